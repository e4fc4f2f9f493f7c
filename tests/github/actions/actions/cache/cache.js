// The actions/cache stand-in (see action.yml). One script: restores as `main`, saves as `post`.
// Like the real action, the primary key is computed once, in main, and handed to post as state.
const fs = require("fs");
const path = require("path");
const os = require("os");

const input = (name) => (process.env[`INPUT_${name.toUpperCase()}`] || "").trim();
const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);
const expand = (p) => path.resolve(p.replace(/^~(?=$|\/)/, os.homedir()));
const store = process.env.STANDIN_CACHE_DIR;
const entry = (k) => path.join(store, encodeURIComponent(k));
const paths = lines(input("path"));
const savedKey = process.env.STATE_CACHE_KEY;

if (savedKey === undefined) {
  const key = input("key");
  let hit = fs.existsSync(entry(key)) ? key : null;
  if (!hit && fs.existsSync(store)) {
    const all = fs.readdirSync(store).map(decodeURIComponent)
      .sort((a, b) => fs.statSync(entry(b)).mtimeMs - fs.statSync(entry(a)).mtimeMs);
    for (const prefix of lines(input("restore-keys"))) {
      hit = all.find((k) => k.startsWith(prefix)) || null;
      if (hit) break;
    }
  }
  if (hit) {
    paths.forEach((p, i) => {
      const saved = path.join(entry(hit), String(i));
      if (fs.existsSync(saved)) fs.cpSync(saved, expand(p), { recursive: true });
    });
    console.log(`Cache restored from key: ${hit}`);
  } else {
    console.log(`Cache not found for input keys: ${key}`);
  }
  fs.appendFileSync(process.env.GITHUB_STATE, `CACHE_KEY=${key}\n`);
  fs.appendFileSync(process.env.GITHUB_OUTPUT, `cache-hit=${hit === key}\n`);
} else if (fs.existsSync(entry(savedKey))) {
  console.log(`Cache hit occurred on the primary key ${savedKey}, not saving cache.`);
} else {
  fs.mkdirSync(entry(savedKey), { recursive: true });
  paths.forEach((p, i) => {
    if (fs.existsSync(expand(p))) fs.cpSync(expand(p), path.join(entry(savedKey), String(i)), { recursive: true });
  });
  console.log(`Cache saved with key: ${savedKey}`);
}
