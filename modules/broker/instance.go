package broker

import (
	"encoding/hex"
	"fmt"
	"sync/atomic"

	"github.com/tildegate/tildegate/wire"
)

// instance names this gateway process in every challenge, so that an
// agent that reaches it at two addresses or names holds one registration
// per name on it. It is random per process unless the configuration sets
// one; it never comes from storage, which the gateways of a cluster
// share.
var instance atomic.Value

// randomInstance is the process's instance id when the configuration sets
// none.
var randomInstance = hex.EncodeToString(randomBytes(8))

func init() {
	instance.Store(randomInstance)
}

// Instance returns this gateway's instance id.
func Instance() string { return instance.Load().(string) }

// SetInstance sets this gateway's instance id, as the configuration
// gives it; empty gives back the process's random one.
func SetInstance(id string) error {
	if id == "" {
		id = randomInstance
	}
	if !wire.ValidInstance(id) {
		return fmt.Errorf("instance id %q: want at most %d characters of %s", id, wire.MaxInstanceLength, wire.InstanceChars)
	}
	instance.Store(id)
	return nil
}
