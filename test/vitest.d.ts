// What test/globalSetup.ts hands every test file through `inject(...)`.
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** host:port of the run's shared dev server (random ports, never a developer's 7233). */
    temporalAddress: string;
    temporalNamespace: string;
    temporalUiUrl: string;
    /** Prebuilt workflow bundle, or null when workflows/index.ts is absent or failed to bundle. */
    workflowBundlePath: string | null;
    /** Why there is no bundle, so tests that need one can fail with the real reason. */
    workflowBundleError: string | null;
  }
}
