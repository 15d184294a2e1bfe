// Bundled on its own as dist/languageclient.js and loaded when the worker first starts (see workerClient.ts).
export * from 'vscode-languageclient/node';
