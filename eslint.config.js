import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // node:test's test()/describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              name: ['test', 'it', 'describe', 'suite', 'before', 'after'],
              package: 'node:test',
            },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-process-exit': 'off',
    },
  },
  // Layer rules (docs/architecture.md): core is pure, adapters know nothing above them, the pipeline
  // knows nothing of the CLI, only main.ts exits, only config/ reads the environment.
  {
    files: ['src/config/**/*.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'exit',
          message: 'Only src/main.ts exits; throw a KopiDockaError instead.',
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/main.ts', 'src/config/**'],
    rules: {
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'exit',
          message: 'Only src/main.ts exits; throw a KopiDockaError instead.',
        },
        {
          object: 'process',
          property: 'env',
          message: 'Only src/config/ reads the environment; take the value as a parameter.',
        },
      ],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['fs', 'fs/promises', 'child_process', 'net', 'http', 'https', 'dgram', 'os'].flatMap((m) =>
            [m, `node:${m}`].map((name) => ({ name, message: 'core/ is pure: no I/O.' })),
          ),
          patterns: [
            {
              group: ['**/adapters/**', '**/pipeline/**', '**/cli/**'],
              message: 'core/ imports no layer above it.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/adapters/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/pipeline/**', '**/cli/**'], message: 'adapters import neither pipeline nor cli.' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/pipeline/**/*.ts', 'src/config/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/cli/**'], message: 'Only cli/ and main.ts may import cli/.' }] },
      ],
    },
  },
);
