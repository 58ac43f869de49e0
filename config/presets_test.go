package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPresetNames(t *testing.T) {
	assert.Equal(t, []string{"hotstuff", "s-hs", "s-hs-g", "s-sl", "smp-hs", "streamlet"}, PresetNames())
	for name, p := range Presets {
		assert.Equal(t, name, p.Name)
		assert.Contains(t, []string{EngineHotStuff, EngineStreamlet}, p.Engine, name)
		assert.NotEmpty(t, p.Paper, name)
	}
}

func TestApplyAlgorithmOnDefaults(t *testing.T) {
	cases := []struct {
		alg, engine, mem string
		gossip           bool
	}{
		{"hotstuff", EngineHotStuff, MemNative, false},
		{"streamlet", EngineStreamlet, MemNative, false},
		{"smp-hs", EngineHotStuff, MemSMP, false},
		{"s-hs", EngineHotStuff, MemStratus, false},
		{"s-sl", EngineStreamlet, MemStratus, false},
		{"s-hs-g", EngineHotStuff, MemStratus, true},
		{"HotStuff", EngineHotStuff, MemNative, false},
		{"S-HS", EngineHotStuff, MemStratus, false},
	}
	for _, tc := range cases {
		c, err := Parse([]byte(`{}`))
		require.NoError(t, err)
		eng, err := c.ApplyAlgorithm(tc.alg)
		require.NoError(t, err, tc.alg)
		assert.Equal(t, tc.engine, eng, tc.alg)
		assert.Equal(t, tc.mem, c.MemType, tc.alg)
		assert.Equal(t, tc.gossip, c.Gossip, tc.alg)
	}
}

func TestApplyAlgorithmUnknown(t *testing.T) {
	for _, alg := range []string{"", "paxos", "hotstuff2", "s_hs"} {
		c := Default()
		before := c
		eng, err := c.ApplyAlgorithm(alg)
		require.Error(t, err, alg)
		assert.Empty(t, eng)
		assert.Contains(t, err.Error(), `"`+alg+`"`)
		assert.Contains(t, err.Error(), strings.Join(PresetNames(), ", "))
		assert.Equal(t, before.MemType, c.MemType, "config untouched on error")
		assert.Equal(t, before.Gossip, c.Gossip)
	}
}

func TestApplyAlgorithmEngineKeepsExplicitMemType(t *testing.T) {
	for _, tc := range []struct{ alg, file, want string }{
		{"hotstuff", "stratus", MemStratus},
		{"hotstuff", "smp", MemSMP},
		{"hotstuff", "naive", MemSMP},   // alias
		{"hotstuff", "ack", MemStratus}, // alias
		{"hotstuff", "native", MemNative},
		{"streamlet", "stratus", MemStratus},
		{"streamlet", "ack", MemStratus},
	} {
		c, err := Parse([]byte(`{"mem_type": "` + tc.file + `"}`))
		require.NoError(t, err)
		_, err = c.ApplyAlgorithm(tc.alg)
		require.NoError(t, err)
		assert.Equal(t, tc.want, c.MemType, "%s with mem_type %s", tc.alg, tc.file)
	}
}

func TestApplyAlgorithmPresetOverridesExplicitMemType(t *testing.T) {
	// Named protocols of the paper fix their mempool whatever the file says.
	for _, tc := range []struct{ alg, want string }{
		{"smp-hs", MemSMP}, {"s-hs", MemStratus}, {"s-sl", MemStratus},
	} {
		c, err := Parse([]byte(`{"mem_type": "native"}`))
		require.NoError(t, err)
		_, err = c.ApplyAlgorithm(tc.alg)
		require.NoError(t, err)
		assert.Equal(t, tc.want, c.MemType, tc.alg)
	}
}

func TestApplyAlgorithmDefaultMemTypeNotSetOnlyByValue(t *testing.T) {
	// A Config built in code (not parsed) has nothing set: "hotstuff" forces native.
	c := Default()
	c.MemType = MemStratus
	_, err := c.ApplyAlgorithm("hotstuff")
	require.NoError(t, err)
	assert.Equal(t, MemNative, c.MemType)
}

func TestApplyAlgorithmGossip(t *testing.T) {
	// s-hs-g keeps a shared mempool from the file and upgrades native to stratus.
	for file, want := range map[string]string{"native": MemStratus, "smp": MemSMP, "naive": MemSMP, "ack": MemStratus, "stratus": MemStratus} {
		c, err := Parse([]byte(`{"mem_type": "` + file + `"}`))
		require.NoError(t, err)
		eng, err := c.ApplyAlgorithm("s-hs-g")
		require.NoError(t, err)
		assert.Equal(t, EngineHotStuff, eng)
		assert.True(t, c.Gossip)
		assert.Equal(t, want, c.MemType, "file mem_type %s", file)
	}
}

func TestApplyAlgorithmResolvesAliasesWithoutPresetMemType(t *testing.T) {
	c := Default()
	c.MemType = "ack"
	_, err := c.ApplyAlgorithm("s-hs-g")
	require.NoError(t, err)
	assert.Equal(t, MemStratus, c.MemType)
}
