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
		errs = append(errs, errors.New("-algorithm: "+algErr.Error()))
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
