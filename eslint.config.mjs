// The samples' linter setup, plus the layering rule of docs/ARCHITECTURE.md:
// common/ imports neither side; workflows/ imports only types from activities/;
// activities/ never imports workflows/; lab/ never imports client/. Import circles are madge's
// (npm run lint).
import tseslint from 'typescript-eslint';

const layer = (patterns, allowTypeImports = false) => ({
  '@typescript-eslint/no-restricted-imports': [
    'error',
    {
      patterns: patterns.map((group) => ({
        group,
        allowTypeImports,
        message: 'breaks the layering rule in docs/ARCHITECTURE.md',
      })),
    },
  ],
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test/histories/**', '.state/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mts'],
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Prettier wraps code at 120; this holds comments to it too. A sentence an operator reads
      // stays whole in its string, so tests can grep it.
      'max-len': [
        'error',
        { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true },
      ],
    },
  },
  {
    files: ['common/**/*.ts'],
    rules: layer([['**/workflows/**', '**/activities/**', '**/client/**', '**/lab/**', '**/worker/**']]),
  },
  { files: ['activities/**/*.ts'], rules: layer([['**/workflows/**', '**/client/**', '**/lab/**', '**/worker/**']]) },
  {
    files: ['workflows/**/*.ts'],
    rules: layer([['**/activities/**', '**/client/**', '**/lab/**', '**/worker/**']], true),
  },
  // The lab is driven by the CLI, never the other way round.
  { files: ['lab/**/*.ts'], rules: layer([['**/client/**', '**/worker/**']]) },
);
