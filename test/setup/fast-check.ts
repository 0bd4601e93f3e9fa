// Property tests draw from one fixed seed by default, so a run is reproducible and a rare draw cannot make CI
// fail on a change that did not cause it. FC_SEED=<n> replays another seed (fast-check prints the failing
// one); FC_SEED=random draws a fresh seed per run, for exploring.
import fc from 'fast-check';

const seed = process.env.FC_SEED;
if (seed !== 'random') fc.configureGlobal({ seed: seed ? Number(seed) : 20_261_202 });
