// Package config holds the replica and client configuration: the Config value, its documented
// defaults, strict JSON loading, ips.txt parsing and Validate.
//
// A Config is a plain value: it is parsed once by the binaries and passed to constructors. Nothing
// reads it through a global.
//
// Parse and Decode read config.json over Default: an unknown key is an error naming it and the
// key it probably meant, keys of the original prototype that no longer mean anything are refused
// with a hint, and every problem of a file is reported at once. LoadWith applies -set overrides
// before decoding, so they are checked like the file. ParseIPs reads ips.txt, which alone defines
// the nodes; Presets map the -algorithm names to an engine, a mempool and dissemination
// (ApplyAlgorithm); Migrate converts the original prototype's config.json.
//
// The package sits at the bottom with types and crypto. See docs/spec.md §5 for what the keys
// mean and docs/configuration.md for every key with its default.
package config
