-- wrk script: GET /products/{id}, cycling through every product id in a fixed, scattered order.
--
-- The walk steps by a prime (7919) modulo the product count, so it visits each id once per
-- PRODUCTS requests and mixes hot and long-tail products the way real traffic does; the order
-- is the same on every run, so servers compared in one run see the same sequence of ids.
-- PRODUCTS (environment, default 100000) is the number of products at seed scale 1.0.

local products = tonumber(os.getenv("PRODUCTS") or "100000")
local stride = 7919
local counter = 0

request = function()
    counter = counter + 1
    local id = (counter * stride) % products + 1
    return wrk.format("GET", "/products/" .. id)
end
