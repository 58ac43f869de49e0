package replica

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum/rlp"

	"github.com/stratusbft/stratus/consensus"
	"github.com/stratusbft/stratus/types"
)

// VoteStore keeps a replica's voting state in a small file, so that a replica restarted after a
// crash never votes twice in a view nor against its lock. Save writes a temporary file, syncs it
// and renames it over the old one: a crash leaves either the old state or the new one.
type VoteStore struct {
	path string
}

// NewVoteStore returns the store of node id under dir, creating dir if needed.
func NewVoteStore(dir string, id types.NodeID) (*VoteStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replica: data directory: %w", err)
	}
	return &VoteStore{path: filepath.Join(dir, fmt.Sprintf("vote.%d", id))}, nil
}

// Path is the file the state goes to.
func (s *VoteStore) Path() string { return s.path }

type storedVote struct {
	LastVoted types.View
	Lock      *types.QC `rlp:"nil"`
}

// Save writes the state durably.
func (s *VoteStore) Save(v consensus.VotingState) error {
	b, err := rlp.EncodeToBytes(storedVote{LastVoted: v.LastVoted, Lock: v.Lock})
	if err != nil {
		return fmt.Errorf("replica: encode voting state: %w", err)
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("replica: save voting state: %w", err)
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		return fmt.Errorf("replica: save voting state to %s: %w", s.path, err)
	}
	return nil
}

// Load reads the saved state; nil without error when there is none yet.
func (s *VoteStore) Load() (*consensus.VotingState, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replica: voting state: %w", err)
	}
	var sv storedVote
	if err := rlp.DecodeBytes(b, &sv); err != nil {
		return nil, fmt.Errorf("replica: voting state %s is damaged: %w", s.path, err)
	}
	if sv.Lock != nil {
		if err := types.ValidateQC(sv.Lock); err != nil {
			return nil, fmt.Errorf("replica: voting state %s: lock: %w", s.path, err)
		}
	}
	return &consensus.VotingState{LastVoted: sv.LastVoted, Lock: sv.Lock}, nil
}
