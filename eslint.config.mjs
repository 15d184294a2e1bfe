// ESLint flat config: typescript-eslint's recommended rules; formatting is Prettier's job
// (eslint-config-prettier turns off the rules that would fight it).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'test-output/**',
      'models/**',
      'samples/**',
      // AssemblyScript: TypeScript syntax with its own types (i32, f32, load<T>), built by asc.
      'server/train/wasm/assembly/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // Ambient declarations (types for globals the project's lib lacks) are what namespaces are still for.
      '@typescript-eslint/no-namespace': ['error', { allowDeclarations: true }],
    },
  },
  {
    // A promise nobody awaits loses its error: in the extension host that is a silent failure, in the
    // worker an unhandled rejection. These two rules need types, so they cover the shipped code only.
    files: ['server/**/*.ts', 'extension/**/*.ts', 'common/**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  {
    files: ['webview/**/*.ts'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    // CommonJS scripts (e.g. test/integration/reportMaxRss.cjs, preloaded with node --require): require() is how they import.
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node, ...globals.commonjs } },
    rules: {
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
);
