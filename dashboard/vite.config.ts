// Builds the dashboard into plain static files (dist/) that work under any path of any static host:
// `base: "./"` makes every asset URL relative to index.html. Configuration is read at run time from ./config.json.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
});
