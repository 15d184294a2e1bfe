// Preloaded into a CLI process by measuredCli.ts (node --require): at exit, writes the process's
// peak resident set size in kB to the file named by VIT_LENS_TEST_MAXRSS_FILE.
const file = process.env.VIT_LENS_TEST_MAXRSS_FILE;
if (file) process.on('exit', () => require('fs').writeFileSync(file, String(process.resourceUsage().maxRSS)));
