import { defineConfig } from "vite";

// Django (runserver / ASGI) listens here during development.
const BACKEND = "http://127.0.0.1:8000";

export default defineConfig({
  // Django serves dist/index.html at "/" (and at client-side routes) and dist/assets/* at /assets/*.
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    // OpenSeadragon alone is ~ 250 kB minified; keep the warning for anything well beyond it.
    chunkSizeWarningLimit: 600,
  },
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target: BACKEND },
      "/ws": { target: BACKEND, ws: true },
      "/admin": { target: BACKEND },
      // The Django admin's own CSS/JS, so /admin looks right through the dev server.
      "/static": { target: BACKEND },
    },
  },
  preview: {
    port: 4173,
    proxy: {
      "/api": { target: BACKEND },
      "/ws": { target: BACKEND, ws: true },
      "/admin": { target: BACKEND },
      "/static": { target: BACKEND },
    },
  },
});
