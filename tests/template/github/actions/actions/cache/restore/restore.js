// actions/cache/restore stand-in: the shared script, restore half only, as a step of its own.
process.env.STANDIN_CACHE_MODE = "restore";
require("../cache.js");
