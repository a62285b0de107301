-- Holds every request body to its route's limit (route metadata max_bytes; gateway/render.py
-- writes the limit of a path no route matches here). A declared content-length over it is
-- refused at once, before the body is sent; otherwise the complete body is measured (the buffer
-- filter before this one counts the chunks it buffers, but passes a body that arrives whole in
-- its last chunk, such as one HTTP/2 DATA frame with END_STREAM).
local DEFAULT_MAX_BYTES = @default_limit_bytes@

function envoy_on_request(handle)
  local route = handle:metadata()
  local limit = tonumber(route and route:get("max_bytes") or nil) or DEFAULT_MAX_BYTES
  local declared = tonumber(handle:headers():get("content-length") or "")
  if declared ~= nil and declared > limit then
    handle:respond({[":status"] = "413"}, "Payload Too Large")
    return
  end
  local body = handle:body()
  if body ~= nil and body:length() > limit then
    handle:respond({[":status"] = "413"}, "Payload Too Large")
  end
end
