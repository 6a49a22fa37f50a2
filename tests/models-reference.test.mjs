// Collected by scripts/test.mjs (tests/*.test.mjs): the self-tests of the model test infrastructure in tests/models/.
import './models/reference.test.mjs';
