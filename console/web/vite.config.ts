import { defineConfig } from "vite";

// Preact's automatic JSX runtime through Vite's own transformer (no plugin needed).
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, target: "es2022" },
});
