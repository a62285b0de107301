-- Measures every complete request body against its route's limit (route metadata max_bytes;
-- gateway/render.py writes the limit of a path no route matches here). The buffer filter before
-- it counts the chunks it buffers, but passes a body that arrives whole in its last chunk, such
-- as one HTTP/2 DATA frame with END_STREAM. A declared content-length over the limit is not
-- refused before the body comes: a client that sends its body before reading the answer (most
-- HTTP libraries) would see the connection reset instead of the 413.
local DEFAULT_MAX_BYTES = @default_limit_bytes@

function envoy_on_request(handle)
  local body = handle:body()
  if body == nil then return end
  local route = handle:metadata()
  local limit = tonumber(route and route:get("max_bytes") or nil) or DEFAULT_MAX_BYTES
  if body:length() > limit then
    handle:respond({[":status"] = "413"}, "Payload Too Large")
  end
end
