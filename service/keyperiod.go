package service

import (
	"context"
	"crypto/cipher"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Period keys: which one is current, when each stopped being current, and their destruction.
// Where they are kept is the key store's business (keystore.go, keystore_shared.go).

// periodKeyName names the period key of the period starting at start.
func periodKeyName(start time.Time) string { return periodPrefix + start.UTC().Format(periodLayout) }

// periodKey is one period key, unsealed.
type periodKey struct {
	name    string
	start   time.Time
	created time.Time     // when it was made, by the clock of the keyring that made it
	period  time.Duration // how long it is current at most; 0: not recorded (an older file)
	retired time.Time     // when roll made another key current instead (zero: not since open)
	aead    cipher.AEAD
}

func newPeriodKey(kf keyFile, secret []byte) (*periodKey, error) {
	aead, err := newGCM(secret)
	if err != nil {
		return nil, err
	}
	return &periodKey{name: kf.Name, start: kf.Start, created: kf.Created, period: kf.Period, aead: aead}, nil
}

func (k *Keyring) periodKey(name string) *periodKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, pk := range k.periods {
		if pk.name == name {
			return pk
		}
	}
	return nil
}

// roll makes the period key of now's period current, creating it if needed, and returns its
// name ("" without a key directory). A new key is due when a period of the configured length
// began after the newest key's start, or when the newest key was current for its own period
// (the key period may have been longer when it was made). A clock that went back keeps the
// newest key current, and a clock set far forward is not believed (effectiveNow). On a shared
// store the keyring first reloads the period keys, so that it goes by the keys other processes
// made and forgets the ones they destroyed.
func (k *Keyring) roll(now time.Time) (string, error) {
	if k.ks == nil {
		return "", nil
	}
	k.changeMu.Lock()
	defer k.changeMu.Unlock()
	if k.shared != nil {
		if err := k.reload(); err != nil {
			return "", err
		}
	}
	k.mu.Lock()
	now = k.effectiveNow(now.UTC())
	start := now.Truncate(k.period)
	if n := len(k.periods); n > 0 {
		last := k.periods[n-1]
		ownEnd := last.period > 0 && !now.Before(last.start.Add(last.period))
		if !start.After(last.start) && !ownEnd {
			k.current = last
			k.mu.Unlock()
			return last.name, nil
		}
		if !start.After(last.start) {
			start = last.start.Add(last.period) // its own period ended before the configured grid's next
		}
	}
	k.mu.Unlock()
	secret, err := newSecret()
	if err != nil {
		return "", err
	}
	name := periodKeyName(start)
	kf := keyFile{Name: name, MasterKeyID: k.id, Created: now, Start: start, Period: k.period}
	// Another process may make this period's key first: create shares it rather than replace it.
	kf, secret, err = k.ks.create(context.Background(), kf, secret, k.wrap)
	if err != nil {
		return "", fmt.Errorf("new period key: %w", err)
	}
	pk, err := newPeriodKey(kf, secret)
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	pk = k.addPeriod(pk)
	if k.current != nil && k.current != pk {
		k.current.retired = now
	}
	k.current = pk
	return name, nil
}

// addPeriod adds pk to the period keys in order of start, unless a key of its name is there
// already; it returns the key the keyring holds under the name. k.mu is held.
func (k *Keyring) addPeriod(pk *periodKey) *periodKey {
	i, found := slices.BinarySearchFunc(k.periods, pk.name, func(p *periodKey, name string) int { return strings.Compare(p.name, name) })
	if found {
		return k.periods[i]
	}
	k.periods = slices.Insert(k.periods, i, pk)
	return pk
}

// maxClockStep is how far the host's wall clock may be set forward, beyond the time its
// monotonic clock measured, before roll stops believing it.
const maxClockStep = time.Minute

// effectiveNow is the time roll goes by. A wall clock set forward while the process runs (a bad
// time source, a virtual machine resumed with a wrong clock) would make the key of a far future
// period; once the clock came back, that key would stay current, and every data key it wraps
// readable in old copies of the database, until real time reached its period. So while the wall
// clock is more than maxClockStep ahead of the time the monotonic clock measured since the
// keyring was opened, roll goes by the latter, and logs an error. A legitimate step (a clock
// corrected forward, a host resumed from suspend, which the monotonic clock does not count) only
// makes keys roll that much later until the next start, as downtime does. It is called with
// k.mu held.
func (k *Keyring) effectiveNow(now time.Time) time.Time {
	var step time.Duration
	if k.clockStep != nil {
		step = k.clockStep()
	} else if !k.opened.IsZero() {
		wall := time.Now()
		step = wall.Round(0).Sub(k.opened.Round(0)) - wall.Sub(k.opened)
	}
	if step <= maxClockStep {
		k.stepLogged = 0
		return now
	}
	if d := step - k.stepLogged; d > maxClockStep || d < -maxClockStep {
		k.stepLogged = step
		k.logger().Error("the host's clock was set forward while running: period keys roll by the time that passed instead",
			"clock_step", step.Round(time.Second).String())
	}
	return now.Add(-step)
}

func (k *Keyring) logger() *slog.Logger {
	if k.log != nil {
		return k.log
	}
	return slog.Default()
}

// keyFor names the period key a data key that must stay readable until t plus retention should
// be wrapped by: the newest key whose period began by t, or the current key if there is none.
func (k *Keyring) keyFor(t time.Time) string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.current == nil {
		return ""
	}
	for i := len(k.periods) - 1; i >= 0; i-- {
		if !k.periods[i].start.After(t) {
			return k.periods[i].name
		}
	}
	return k.current.name
}

// rewrap wraps the data key w (for purpose) again, by the period key named target. An error
// wrapping errUnreadable means the keyring does not open w.
func (k *Keyring) rewrap(purpose string, w []byte, target string) ([]byte, error) {
	plain, err := k.unwrap(purpose, w)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	pk := k.periodKey(target)
	if pk == nil {
		return nil, fmt.Errorf("period key %s is not loaded", target)
	}
	return wrapWith(pk, purpose, plain)
}

// periodInfo is a period key's name and when it stopped being current (zero: it still is).
type periodInfo struct {
	name string
	end  time.Time
	// retired is when this keyring stopped using it as the current key, by the clock roll was
	// given; zero if it was not current since the keyring was opened.
	retired time.Time
}

// pastPeriods lists the period keys that are no longer current, oldest first, with when each
// stopped being current.
func (k *Keyring) pastPeriods() []periodInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out []periodInfo
	for i := 0; i+1 < len(k.periods); i++ {
		if k.periods[i] == k.current {
			break
		}
		// A key stops being current when its successor is made (after its successor's start, by
		// up to a keeper interval, or by the downtime if the service was down then), and at the
		// latest when its own period ends if the service was running then, since roll makes the
		// successor by then. The key period configured now may differ from the one the key was
		// made with; a key file that does not record its own gets no such bound.
		pk, next := k.periods[i], k.periods[i+1]
		end := next.start
		if next.created.After(end) {
			end = next.created
		}
		if own := pk.start.Add(pk.period); pk.period > 0 && own.Before(end) {
			end = own
		}
		out = append(out, periodInfo{name: pk.name, end: end, retired: pk.retired})
	}
	return out
}

// destroyPeriod destroys the period key name: in the key store and the copy in memory.
func (k *Keyring) destroyPeriod(ctx context.Context, name string) error {
	k.changeMu.Lock()
	defer k.changeMu.Unlock()
	k.mu.RLock()
	current := k.current != nil && k.current.name == name
	k.mu.RUnlock()
	if current {
		return fmt.Errorf("period key %s is current", name)
	}
	if err := k.ks.destroy(ctx, name); err != nil {
		return err
	}
	k.mu.Lock()
	k.periods = slices.DeleteFunc(k.periods, func(pk *periodKey) bool { return pk.name == name })
	delete(k.doomed, name)
	k.mu.Unlock()
	// A temporary file left by an interrupted write since the keyring was opened (within a
	// minute of a crash, too young to be destroyed then) may hold a copy of the key.
	return k.finishLeftovers()
}

// finishLeftovers destroys what interrupted writes and destructions left in the key directory
// (keyDir.finishLeftovers), and logs it.
func (k *Keyring) finishLeftovers() error {
	left, err := k.ks.finishLeftovers()
	if len(left) > 0 {
		k.logger().Warn("key directory: destroyed the files of interrupted key writes and destructions", "dir", k.ks.String(), "files", left)
	}
	return err
}

// PeriodKeys lists the names of the period keys the keyring holds, oldest first.
func (k *Keyring) PeriodKeys() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]string, len(k.periods))
	for i, pk := range k.periods {
		out[i] = pk.name
	}
	return out
}
