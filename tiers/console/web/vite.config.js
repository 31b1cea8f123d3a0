// Build of the web console: `make console` (npm ci && npm run build) writes
// dist/, which tiers/console embeds. The output must not depend on the
// machine or the time of the build (make console-check rebuilds it in CI and
// compares): no source maps, no build stamps, content-hashed file names.
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

export default defineConfig({
  plugins: [vue()],
  base: '/',
  define: {
    __VUE_OPTIONS_API__: 'false',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2020',
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      output: {
        // ECharts is most of the bytes and changes least: its own chunk,
        // cached apart from the console's code.
        manualChunks(id) {
          if (id.includes('node_modules/echarts') || id.includes('node_modules/zrender')) return 'echarts'
          // The CSV parser only the import page needs.
          if (id.includes('node_modules/papaparse')) return 'papaparse'
          if (id.includes('node_modules/')) return 'vendor'
        },
      },
    },
  },
  server: {
    // npm run dev: the API of a local node (make run's city).
    proxy: { '/v1': process.env.CITYHUB_API || 'http://127.0.0.1:7201' },
  },
})
