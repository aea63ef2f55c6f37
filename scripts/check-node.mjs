// Imported by bin/mimir.mjs and run before `npm test` and `npm install`'s prepare step: an old
// Node gets a message that says what to do, never a crash inside a native module.
// npm scripts and npx normally run on the Node 24 that the `node` devDependency puts first on PATH;
// this catches the cases where it is missing (an install that skipped it, a hand-run script).

/** What is wrong with running on Node `version`, or null when it is new enough (22.12+). */
export function nodeVersionProblem(version, execPath) {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major > 22 || (major === 22 && minor >= 12)) return null;
  return (
    `MIMIR Workbench needs Node.js 22.12 or newer; this is Node ${version} (${execPath}).\n` +
    'Run it through npm (npm start, npm test, npx mimir): the project installs its own Node 24 as a\n' +
    'devDependency and npm puts it first on the PATH. If that did not happen, run `npm install` again,\n' +
    'or install Node 22+ from https://nodejs.org.'
  );
}

const problem = nodeVersionProblem(process.versions.node, process.execPath);
if (problem !== null) {
  console.error(problem);
  process.exit(1);
}
