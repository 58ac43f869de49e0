package benchmark

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/stratusbft/stratus/types"
)

// Defaults applied by Run when the corresponding Options field is zero.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMinBackoff       = 10 * time.Millisecond
	DefaultMaxBackoff       = 100 * time.Millisecond
	DefaultProgressInterval = time.Second
)

// Transaction size bounds. MinPayload is the smallest transaction the generator makes: an 8-byte
// process nonce followed by an 8-byte counter keep every transaction unique. MaxPayload is the
// largest transaction the wire format carries.
const (
	MinPayload = 16
	MaxPayload = types.MaxTxSize
)

// Distribution names, as in config.json's benchmark.Distribution.
const (
	Uniform = "uniform"
	Zipf    = "zipf"
)

// Target is one replica's HTTP endpoint.
type Target struct {
	ID   int    `json:"id"`   // node ID (line of ips.txt)
	Addr string `json:"addr"` // "host:port", or a base URL such as "http://host:port"
}

// Options configure a load-generating run. The zero value of an optional field selects its
// default; Validate reports impossible values.
type Options struct {
	// Targets are the replicas to send to. With Zipf the order matters: the first target gets the
	// most load, so callers list replicas by ascending node ID and replica 1 is the hot spot.
	Targets []Target

	// Duration bounds the run; 0 means no time limit (the run then ends when N transactions are
	// committed or the context is cancelled). Requests still in flight at the deadline are
	// cancelled and not counted.
	Duration time.Duration

	// N stops the run once N transactions have been committed (0 = no limit). Transactions of a
	// failed request give their share of N back, and are replaced by fresh ones.
	N int64

	// Concurrency is the number of workers, each with one request in flight.
	Concurrency int

	// Rate limits transactions per second across all workers (0 = unlimited). A request for a
	// batch of b transactions waits for b tokens, so a rate below Batch spaces requests out by
	// more than a second.
	Rate int

	// Payload is the size of each transaction in bytes (at least MinPayload).
	Payload int

	// Batch is the number of transactions per request.
	Batch int

	// Zipf picks the replica of each request with a Zipf law of parameters ZipfS (> 1) and
	// ZipfV (>= 1) over the target list (index 0 is the most likely); otherwise uniformly.
	Zipf         bool
	ZipfS, ZipfV float64

	// Timeout bounds one request, from sending it to reading the whole answer
	// (0 = DefaultTimeout). It should exceed the server's own commit wait limit.
	Timeout time.Duration

	// MaxBackoff caps the pause of a worker after an error (0 = DefaultMaxBackoff). Pauses start
	// at DefaultMinBackoff (or MaxBackoff if smaller), double with each consecutive error, carry
	// jitter, and are stretched to MaxBackoff when the server sends Retry-After.
	MaxBackoff time.Duration

	// Seed seeds the workers' replica choice and jitter (0 = random). Transaction contents are
	// always unique whatever the seed.
	Seed int64

	// Progress, when set, is called every ProgressInterval (0 = DefaultProgressInterval) from a
	// single goroutine while the run lasts.
	Progress         func(Progress)
	ProgressInterval time.Duration

	// Logger receives start, end and first-error-of-each-kind lines (nil = no logging).
	Logger logrus.FieldLogger

	// KV replaces transaction batches by a key-value workload: each worker sends, one at a time,
	// PUT /k<n>?wait=commit with a value unique to the run (probability Writes) or
	// GET /k<n>?consistency=linearizable, for n uniform in [0, Keys). Payload and Batch are then
	// unused, and N counts operations. With Check the recorded history is checked for
	// linearizability after the run (bounded by CheckTimeout, 0 = no limit).
	KV           bool
	Keys         int
	Writes       float64
	Check        bool
	CheckTimeout time.Duration

	// Transport carries the requests (nil = a keep-alive transport sized for Concurrency).
	Transport http.RoundTripper
}

// Validate reports every impossible option at once.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("benchmark: "+format, args...))
	}
	if len(o.Targets) == 0 {
		bad("no targets")
	}
	seen := make(map[int]bool, len(o.Targets))
	for _, t := range o.Targets {
		switch {
		case t.ID < 1:
			bad("target %q: node ID %d must be at least 1", t.Addr, t.ID)
		case seen[t.ID]:
			bad("target node %d listed twice", t.ID)
		}
		seen[t.ID] = true
		if t.Addr == "" {
			bad("target node %d has no address", t.ID)
		}
	}
	if o.Duration < 0 {
		bad("duration %v must not be negative", o.Duration)
	}
	if o.N < 0 {
		bad("n %d must not be negative", o.N)
	}
	if o.Concurrency < 1 {
		bad("concurrency %d must be at least 1", o.Concurrency)
	}
	if o.Rate < 0 {
		bad("rate %d must not be negative (0 = unlimited)", o.Rate)
	}
	if o.Payload < MinPayload || o.Payload > MaxPayload {
		bad("payload %d is outside [%d, %d]", o.Payload, MinPayload, MaxPayload)
	}
	if o.Batch < 1 || o.Batch > types.MaxPayloadItems {
		bad("batch %d is outside [1, %d]", o.Batch, types.MaxPayloadItems)
	}
	if o.Zipf {
		if !(o.ZipfS > 1) {
			bad("zipf s %v must be greater than 1", o.ZipfS)
		}
		if !(o.ZipfV >= 1) {
			bad("zipf v %v must be at least 1", o.ZipfV)
		}
	}
	if o.KV {
		if o.Keys < 1 || o.Keys > MaxKeys {
			bad("keys %d is outside [1, %d]", o.Keys, MaxKeys)
		}
		if !(o.Writes >= 0 && o.Writes <= 1) {
			bad("write ratio %v is outside [0, 1]", o.Writes)
		}
	}
	if o.CheckTimeout < 0 {
		bad("check timeout %v must not be negative", o.CheckTimeout)
	}
	if o.Timeout < 0 {
		bad("timeout %v must not be negative", o.Timeout)
	}
	if o.MaxBackoff < 0 {
		bad("max backoff %v must not be negative", o.MaxBackoff)
	}
	if o.ProgressInterval < 0 {
		bad("progress interval %v must not be negative", o.ProgressInterval)
	}
	return errors.Join(errs...)
}

// Distribution names the replica choice: Uniform or Zipf.
func (o Options) Distribution() string {
	if o.Zipf {
		return Zipf
	}
	return Uniform
}

func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		l.SetLevel(logrus.PanicLevel)
		o.Logger = l
	}
	return o
}
