import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import vue from '@vitejs/plugin-vue';
import { VantResolver } from '@vant/auto-import-resolver';
import Components from 'unplugin-vue-components/vite';
import { defineConfig, type Plugin } from 'vite';

/** Every file of the build except the service worker itself, relative to `dir`. */
function listFiles(dir: string, root = dir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return listFiles(path, root);
    return [relative(root, path).split('\\').join('/')];
  });
}

/**
 * Writes the precache list and a build version into the hand-written service worker
 * (`sw/sw.ts` → `dist/sw.js`): the version is a hash over every file's content, so any change of
 * the app makes a new worker that waits for the user.
 */
function precacheManifest(): Plugin {
  let outDir = 'dist';
  return {
    name: 'yanshou-precache-manifest',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir;
    },
    writeBundle() {
      const files = listFiles(outDir)
        .filter((f) => f !== 'sw.js' && !f.endsWith('.map') && !f.startsWith('.vite/'))
        .sort();
      const hash = createHash('sha256');
      for (const f of files) hash.update(f).update(readFileSync(join(outDir, f)));
      const version = hash.digest('hex').slice(0, 16);
      const swPath = join(outDir, 'sw.js');
      const sw = readFileSync(swPath, 'utf8');
      if (!sw.includes('__PRECACHE_MANIFEST__') || !sw.includes('__BUILD_VERSION__')) {
        throw new Error('sw.js lacks the precache placeholders');
      }
      const urls = files.map((f) => (f === 'index.html' ? './' : `./${f}`));
      writeFileSync(
        swPath,
        sw
          .replace('__PRECACHE_MANIFEST__', JSON.stringify(urls))
          .replace('__BUILD_VERSION__', JSON.stringify(version)),
      );
    },
  };
}

/**
 * Vant's icon font names a fallback on a CDN after its inline woff2. Nothing may be fetched from
 * outside the Yanshou server (and the server's CSP refuses it, logging an error on every start):
 * drop the fallback, the inline font is what every supported browser uses.
 */
function noOutsideFonts(): Plugin {
  const fonts = new Map<string, Buffer>();
  return {
    name: 'yanshou-no-outside-fonts',
    enforce: 'pre',
    transform(code, id) {
      if (!id.includes('vant') || !id.endsWith('.css')) return null;
      let out = code.replace(/,\s*url\((?:https?:)?\/\/[^)]*\)\s*format\("[a-z0-9]+"\)/g, '');
      // The inline woff2 (about 24 KB gzipped, as base64 hardly compressible) becomes a file of
      // its own: the CSS shrinks, the font is fetched once, cached by the service worker, and
      // only the icons wait for it.
      out = out.replace(/url\("?data:font\/woff2;[^,]*base64,([A-Za-z0-9+/=]+)"?\)/g, (_m, b64: string) => {
        const bytes = Buffer.from(b64, 'base64');
        const name = `vant-icon-${createHash('sha256').update(bytes).digest('hex').slice(0, 8)}.woff2`;
        fonts.set(name, bytes);
        return `url("./${name}")`;
      });
      return out === code ? null : { code: out, map: null };
    },
    generateBundle() {
      for (const [name, source] of fonts) {
        this.emitFile({ type: 'asset', fileName: `assets/${name}`, source });
      }
    },
  };
}

export default defineConfig({
  base: './',
  plugins: [
    noOutsideFonts(),
    vue(),
    Components({ resolvers: [VantResolver()], dts: 'src/components.d.ts' }),
    precacheManifest(),
  ],
  build: {
    target: 'es2022',
    sourcemap: false,
    // `.vite/manifest.json`: the chunk graph, read by scripts/budget.mjs (not precached).
    manifest: true,
    rollupOptions: {
      input: { index: 'index.html', sw: 'sw/sw.ts' },
      output: {
        entryFileNames: (chunk) => (chunk.name === 'sw' ? 'sw.js' : 'assets/[name]-[hash].js'),
      },
    },
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8080' },
  },
});
