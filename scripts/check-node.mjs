// Runs before install-time and test-time work: a clear message instead of a crash on an old Node.
// npm scripts normally run under the Node 24 that the `node` devDependency puts first on PATH;
// this catches the cases where it is missing (an install that skipped it, a hand-run script).
const [major, minor] = process.versions.node.split('.').map(Number);
const ok = major > 22 || (major === 22 && minor >= 12);
if (!ok) {
  console.error(
    `MIMIR Workbench needs Node.js 22.12 or newer; this is Node ${process.versions.node} (${process.execPath}).\n` +
      'Run it through npm (npm start, npm test, npx mimir): the project installs its own Node 24 as a\n' +
      'devDependency and npm puts it first on the PATH. If that did not happen, run `npm install` again,\n' +
      'or install Node 22+ from https://nodejs.org.',
  );
  process.exit(1);
}
