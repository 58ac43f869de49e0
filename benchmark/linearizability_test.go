package benchmark

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckKVLinearizable(t *testing.T) {
	h := []KVOp{
		{Client: 0, Key: "k1", Write: true, Value: "a", Call: 0, Return: 10},
		{Client: 1, Key: "k1", Value: "", Call: 1, Return: 2},   // before the write took effect
		{Client: 1, Key: "k1", Value: "a", Call: 5, Return: 12}, // concurrent with it
		{Client: 2, Key: "k2", Value: "", Call: 0, Return: 30},  // never written
		{Client: 0, Key: "k1", Write: true, Value: "b", Call: 20, Return: 30},
		{Client: 1, Key: "k1", Value: "b", Call: 31, Return: 40},
		// unknown outcome: may take effect at any point after its call, or never
		{Client: 2, Key: "k1", Write: true, Value: "c", Call: 41, Return: math.MaxInt64},
		{Client: 1, Key: "k1", Value: "b", Call: 42, Return: 43},
		{Client: 1, Key: "k1", Value: "c", Call: 44, Return: 45},
		{Client: 3, Key: "k3", Write: true, Value: "x", Call: 1, Return: math.MaxInt64},
		{Client: 4, Key: "k3", Value: "", Call: 100, Return: 101},
	}
	c := CheckKV(h, 0)
	require.True(t, c.Linearizable, "%+v", c)
	require.Equal(t, "ok", c.Result)
	require.Equal(t, len(h), c.Ops)
	require.Equal(t, 2, c.Pending)
	require.Equal(t, 3, c.Keys)
}

func TestCheckKVRejectsCorruptHistories(t *testing.T) {
	base := []KVOp{
		{Client: 0, Key: "k1", Write: true, Value: "a", Call: 0, Return: 10},
		{Client: 1, Key: "k2", Write: true, Value: "z", Call: 0, Return: 10},
		{Client: 0, Key: "k1", Write: true, Value: "b", Call: 20, Return: 30},
	}
	cases := map[string]KVOp{
		"value never written":         {Client: 1, Key: "k1", Value: "q", Call: 31, Return: 40},
		"stale read after a write":    {Client: 1, Key: "k1", Value: "a", Call: 31, Return: 40},
		"not found after a write":     {Client: 1, Key: "k1", Value: "", Call: 11, Return: 12},
		"value of another key":        {Client: 1, Key: "k1", Value: "z", Call: 31, Return: 40},
		"read before the write began": {Client: 1, Key: "k1", Value: "b", Call: 11, Return: 19},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			c := CheckKV(append(append([]KVOp(nil), base...), bad), 0)
			require.False(t, c.Linearizable, "%+v", c)
			require.Equal(t, "illegal", c.Result)
			require.Equal(t, "k1", c.BadKey)
		})
	}
}
