// actions/cache/save stand-in: the shared script, save half only, as a step of its own.
process.env.STANDIN_CACHE_MODE = "save";
require("../cache.js");
