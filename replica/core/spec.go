package core

import (
	"time"

	"github.com/stratusbft/stratus/config"
	"github.com/stratusbft/stratus/mempool"
	"github.com/stratusbft/stratus/types"
)

// DefaultDedupWindow is the number of delivered transaction IDs a replica remembers per generation
// (two generations are kept) to drop duplicates.
const DefaultDedupWindow = 1 << 19

// SpecFromConfig derives what a Core runs from a validated configuration of n replicas.
func SpecFromConfig(cfg config.Config, engine string, n int) Spec {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	return Spec{
		Engine:         engine,
		MemType:        config.ResolveMemType(cfg.MemType),
		Master:         types.NodeID(cfg.MasterID()),
		Timeout:        ms(cfg.Timeout),
		ProposeTimeout: ms(cfg.ProposeTimeout),
		BSize:          cfg.BSize,
		MemSize:        cfg.MemSize,
		DedupWindow:    DefaultDedupWindow,
		Shared: mempool.SharedConfig{
			MSize:          cfg.MSize,
			BatchTimeout:   ms(cfg.BatchTimeout),
			Q:              cfg.ProofThreshold(n),
			FetchTimeout:   ms(cfg.FetchTimeout),
			PushTimeout:    ms(cfg.PushTimeout),
			ProofsByRef:    cfg.Proofs == config.ProofsReference,
			MaxBacklog:     ms(cfg.MaxBacklog),
			Gossip:         cfg.Gossip,
			Fanout:         cfg.Fanout,
			R:              cfg.R,
			FillInterval:   ms(cfg.FillInterval),
			Capacity:       cfg.Capacity,
			LoadBalance:    cfg.LoadBalance,
			D:              cfg.D,
			EstimateWindow: cfg.EstimateWindow,
			Percentile:     cfg.Percentile,
			BusyThreshold:  ms(cfg.BusyThreshold),
			LBTimeout:      ms(cfg.LBTimeout),
			ForwardTimeout: ms(cfg.ForwardTimeout),
		},
	}
}
