import { dlopenOnlyMechanism } from './dlopen-only';
import { loaderListsMechanism } from './loader-lists';
import { loaderProbeMechanism } from './loader-probe';
import { muslMechanism } from './musl';
import { searchListsMechanism } from './search-lists';
import type { CaptureMechanism } from './types';

export type { Applicability, CaptureMechanism, HandlerOptions, LoaderSet, MechanismContext, MechanismHandler } from './types';

/**
 * Every capture mechanism, best first: the selector gives each loader set the first that applies.
 * A new mechanism is one module plus one line here.
 */
export const MECHANISMS: readonly CaptureMechanism[] = [loaderListsMechanism, loaderProbeMechanism, muslMechanism, searchListsMechanism, dlopenOnlyMechanism];
