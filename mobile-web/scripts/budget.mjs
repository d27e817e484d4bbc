// Reports the phone app's initial download: the entry's static import closure plus the first
// screen (the mine list), JS and CSS, raw and gzipped. Run after `npm run build`:
//   node scripts/budget.mjs [--max-gzip-kb 150]
// Exits non-zero when the gzipped total exceeds the budget.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const dist = new URL('../dist/', import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(dist, '.vite/manifest.json'), 'utf8'));
const maxArg = process.argv.indexOf('--max-gzip-kb');
const maxKb = maxArg > 0 ? Number(process.argv[maxArg + 1]) : 150;

const files = new Set();
function visit(key) {
  const chunk = manifest[key];
  if (!chunk || files.has(chunk.file)) return;
  files.add(chunk.file);
  for (const css of chunk.css ?? []) files.add(css);
  for (const dep of chunk.imports ?? []) visit(dep);
}
visit('index.html');
visit('src/views/MinesView.vue');

let raw = 0;
let gz = 0;
const rows = [];
for (const f of [...files].sort()) {
  const bytes = readFileSync(join(dist, f));
  const g = gzipSync(bytes, { level: 9 }).length;
  raw += bytes.length;
  gz += g;
  rows.push(`${(g / 1024).toFixed(1).padStart(7)} KB gz  ${(bytes.length / 1024).toFixed(1).padStart(7)} KB  ${f}`);
}
console.log(rows.join('\n'));
console.log(`initial JS + CSS: ${(gz / 1024).toFixed(1)} KB gzipped (${(raw / 1024).toFixed(1)} KB raw); budget ${maxKb} KB`);
if (gz / 1024 > maxKb) {
  console.error('over budget');
  process.exit(1);
}
