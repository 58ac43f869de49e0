package config

import "errors"

// CheckRun decodes config JSON, applies an -algorithm value and validates the result for the nodes
// of hosts (ips.txt). The error lists every problem at once, one line each naming its key: unknown
// and removed keys, type errors, the algorithm and invalid values. A key with a key or type
// problem keeps its default while the others are validated, so it is reported once.
func CheckRun(data []byte, hosts []string, algorithm string) (cfg Config, engine string, nodes []Node, err error) {
	cfg, decodeErr := Decode(data)
	var errs []error
	if decodeErr != nil {
		errs = append(errs, decodeErr)
	}
	engine, algErr := cfg.ApplyAlgorithm(algorithm)
	if algErr != nil {
		errs = append(errs, &FlagError{Flag: "-algorithm", Err: algErr})
	}
	nodes = cfg.Nodes(hosts)
	if err := cfg.Validate(len(nodes)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, "", nil, err
	}
	return cfg, engine, nodes, nil
}

// FlagError is a problem with a command-line flag rather than with the configuration file.
type FlagError struct {
	Flag string
	Err  error
}

func (e *FlagError) Error() string { return e.Flag + ": " + e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// OnlyFlags reports whether every problem err joins is a FlagError: the file itself is fine.
func OnlyFlags(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !OnlyFlags(e) {
				return false
			}
		}
		return true
	}
	var fe *FlagError
	return errors.As(err, &fe)
}
