package config

import (
	"fmt"
	"sort"
	"strings"
)

// Preset is a named protocol of the paper: an engine with a mempool and dissemination.
type Preset struct {
	Name    string
	Paper   string
	Engine  string
	MemType string // "" = keep mem_type from the config
	Gossip  bool
}

// Protocol names -algorithm accepts: the one source of them (a test checks the scripts' lists).
const (
	AlgHotStuff  = EngineHotStuff
	AlgStreamlet = EngineStreamlet
	AlgSMPHS     = "smp-hs"
	AlgSHS       = "s-hs"
	AlgSSL       = "s-sl"
	AlgSHSG      = "s-hs-g"
)

// Presets are the protocols -algorithm accepts, by name.
var Presets = map[string]Preset{
	AlgHotStuff:  {Name: AlgHotStuff, Paper: "N-HS", Engine: EngineHotStuff, MemType: MemNative},
	AlgStreamlet: {Name: AlgStreamlet, Paper: "N-SL", Engine: EngineStreamlet, MemType: MemNative},
	AlgSMPHS:     {Name: AlgSMPHS, Paper: "SMP-HS", Engine: EngineHotStuff, MemType: MemSMP},
	AlgSHS:       {Name: AlgSHS, Paper: "S-HS", Engine: EngineHotStuff, MemType: MemStratus},
	AlgSSL:       {Name: AlgSSL, Paper: "S-SL", Engine: EngineStreamlet, MemType: MemStratus},
	AlgSHSG:      {Name: AlgSHSG, Paper: "S-HS-G", Engine: EngineHotStuff, Gossip: true},
}

// PresetNames lists the accepted -algorithm values, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ApplyAlgorithm applies an -algorithm value to the config and returns the engine to run.
//
// The bare engine names "hotstuff" and "streamlet" are presets of the native mempool only when the
// config file leaves mem_type at its default; a config that sets mem_type keeps it, so
// "-algorithm hotstuff" with mem_type "stratus" runs HotStuff over PAB.
func (c *Config) ApplyAlgorithm(alg string) (string, error) {
	p, ok := Presets[strings.ToLower(alg)]
	if !ok {
		return "", fmt.Errorf("algorithm %q is not one of %s", alg, strings.Join(PresetNames(), ", "))
	}
	isEngine := p.Name == EngineHotStuff || p.Name == EngineStreamlet
	if p.MemType != "" && !(isEngine && c.IsSet("mem_type")) {
		c.MemType = p.MemType
	}
	if p.Gossip {
		c.Gossip = true
		if ResolveMemType(c.MemType) == MemNative {
			c.MemType = MemStratus
		}
	}
	c.MemType = ResolveMemType(c.MemType)
	return p.Engine, nil
}
