package benchmark

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// KVOp is one key-value operation of a run's history, with the times (ns since the run started)
// at which it was invoked and answered. A write whose outcome is unknown (the request failed or
// timed out, so it may or may not take effect) has Return = math.MaxInt64: it is pending until
// the end of the history. A read returns Value, "" when the key has never been written (404).
type KVOp struct {
	Client int    `json:"client"`
	Key    string `json:"key"`
	Write  bool   `json:"write"`
	Value  string `json:"value"`
	Call   int64  `json:"call_ns"`
	Return int64  `json:"return_ns"`
}

// Pending reports whether the operation has no known response (a write of unknown outcome).
func (o KVOp) Pending() bool { return o.Return == math.MaxInt64 }

// KVCheck is the verdict of the linearizability check of a history.
type KVCheck struct {
	Result       string `json:"result"` // ok | illegal | unknown (the check timed out)
	Linearizable bool   `json:"linearizable"`
	Ops          int    `json:"ops_checked"`
	Pending      int    `json:"pending_writes"` // writes of unknown outcome, checked as pending
	Keys         int    `json:"keys"`
	// BadKey names a key whose history has no linearization (with Result illegal).
	BadKey  string  `json:"bad_key,omitempty"`
	CheckMS float64 `json:"check_ms"`
}

// kvModel is a register per key: writes set the value, reads return it ("" until the first write).
// The history is partitioned by key, so each key is checked on its own.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make(map[string][]porcupine.Operation)
		for _, op := range history {
			k := op.Input.(KVOp).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(KVOp)
		if in.Write {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(KVOp)
		if in.Write {
			return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%s) -> %q", in.Key, output.(string))
	},
}

// CheckKV checks that the history is linearizable for a key-value store of registers. It gives up
// after timeout (0 = no limit) with Result "unknown".
func CheckKV(history []KVOp, timeout time.Duration) KVCheck {
	ops := make([]porcupine.Operation, len(history))
	keys := make(map[string]bool)
	c := KVCheck{Ops: len(history)}
	for i, o := range history {
		ops[i] = porcupine.Operation{ClientId: o.Client, Input: o, Call: o.Call, Output: o.Value, Return: o.Return}
		keys[o.Key] = true
		if o.Pending() {
			c.Pending++
		}
	}
	c.Keys = len(keys)
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, timeout)
	c.CheckMS = finite(float64(time.Since(start).Microseconds()) / 1000)
	switch res {
	case porcupine.Ok:
		c.Result, c.Linearizable = "ok", true
	case porcupine.Illegal:
		c.Result = "illegal"
		c.BadKey = badKey(history, info)
	default:
		c.Result = "unknown"
	}
	return c
}

// badKey finds the first key whose own history fails the check.
func badKey(history []KVOp, _ porcupine.LinearizationInfo) string {
	byKey := make(map[string][]porcupine.Operation)
	for _, o := range history {
		byKey[o.Key] = append(byKey[o.Key], porcupine.Operation{Input: o, Call: o.Call, Output: o.Value, Return: o.Return})
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if porcupine.CheckOperationsTimeout(kvModel, byKey[k], time.Second) == porcupine.Illegal {
			return k
		}
	}
	return ""
}
