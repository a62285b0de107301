-- REST compatibility filter, listed before the gRPC-JSON transcoder so it sees transcoded
-- responses. It (1) turns the service's "x-http-status" metadata into the HTTP status of a
-- successful call (e.g. 201 for a created face), and (2) rewrites every error body - the
-- transcoder's {"code","message","details"} or Envoy's own plain-text errors - into CompreFace's
-- {"message": ..., "code": N}, taking N from the ErrorInfo metadata "compreface_code" (or the
-- "x-compreface-code" metadata) and the HTTP status from "http_status" where the service set it.

-- The body limit of a path no route matches, in words; gateway/render.py writes it here. Each
-- route names its own in its metadata (body_limit).
local DEFAULT_LIMIT = "@default_limit_text@"

local function json_escape(s)
  return (s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == '\\' then return '\\\\' end
    if c == '\n' then return '\\n' end
    if c == '\r' then return '\\r' end
    if c == '\t' then return '\\t' end
    return string.format('\\u%04x', c:byte())
  end))
end

-- Returns the still-escaped contents of the JSON string value of `key`, or nil.
local function json_string_field(text, key)
  local _, last = text:find('"' .. key .. '"%s*:%s*"')
  if last == nil then return nil end
  local i = last + 1
  local out = {}
  while i <= #text do
    local c = text:sub(i, i)
    if c == '\\' then
      out[#out + 1] = text:sub(i, i + 1)
      i = i + 2
    elseif c == '"' then
      return table.concat(out)
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return nil
end

-- Marks the REST requests that reached this filter. Replies of the health-check filters before
-- it (/healthz, /ready) never do and keep their own shape; gRPC calls pass through untouched
-- (an HTTP status such as 201 must not become the HTTP/2 status of a gRPC response).
function envoy_on_request(handle)
  local ctype = handle:headers():get("content-type") or ""
  if ctype:find("application/grpc", 1, true) == 1 then return end
  handle:streamInfo():dynamicMetadata():set("facegrid.rest", "seen", "1")
end

-- Envoy answers a gRPC call whose body is over the limit UNKNOWN "Payload Too Large" (its
-- mapping of HTTP 413): gRPC clients get RESOURCE_EXHAUSTED naming the limit instead.
local function grpc_too_large(handle)
  local headers = handle:headers()
  if headers:get("grpc-status") ~= "2" or headers:get("grpc-message") ~= "Payload Too Large" then
    return
  end
  local route = handle:metadata()
  local limit = route and route:get("body_limit") or DEFAULT_LIMIT
  headers:replace("grpc-status", "8")
  headers:replace("grpc-message", "request too large: the limit is " .. limit .. " on this method")
end

function envoy_on_response(handle)
  local meta = handle:streamInfo():dynamicMetadata():get("facegrid.rest")
  if meta == nil or meta["seen"] ~= "1" then
    grpc_too_large(handle)
    return
  end
  local headers = handle:headers()
  local status = tonumber(headers:get(":status"))
  local wanted = headers:get("x-http-status")
  headers:remove("x-http-status")
  if status ~= nil and status < 400 then
    if wanted ~= nil and status == 200 then headers:replace(":status", wanted) end
    headers:remove("x-compreface-code")
    return
  end
  if status == nil then return end
  -- body(true) wraps even a reply without a body (HEAD) in an empty buffer; should it ever
  -- give nil, the reply passes unchanged rather than failing in setBytes below.
  local body = handle:body(true)
  if body == nil then return end
  headers = handle:headers() -- handles taken before body() are out of scope after it
  local text = body:getBytes(0, body:length())
  local ctype = headers:get("content-type") or ""
  local message = nil
  local code = headers:get("x-compreface-code")
  if ctype:find("application/json", 1, true) then
    message = json_string_field(text, "message")
    code = code or json_string_field(text, "compreface_code")
    wanted = wanted or json_string_field(text, "http_status")
  end
  if message == nil then message = json_escape(text:gsub("%s+$", "")) end
  if status == 413 and code == nil then
    -- Envoy's own body-limit answer (the route's buffer limit, or the transcoder's)
    local route = handle:metadata()
    local limit = route and route:get("body_limit") or DEFAULT_LIMIT
    message = "Request body too large: the limit is " .. limit .. " per request on this path"
    code = "26"
  end
  if code == nil or not code:match("^%d+$") then
    if status == 400 then code = "26" else code = "0" end
  end
  if wanted ~= nil and wanted:match("^%d%d%d$") then headers:replace(":status", wanted) end
  headers:remove("x-compreface-code")
  local out = '{"message":"' .. message .. '","code":' .. code .. '}'
  body:setBytes(out)
  headers:replace("content-type", "application/json")
  headers:replace("content-length", tostring(#out))
end
