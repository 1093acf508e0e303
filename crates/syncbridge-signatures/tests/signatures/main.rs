//! Integration tests of `syncbridge-signatures`: one test binary, one module
//! per concern.
