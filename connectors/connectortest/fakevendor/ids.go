package fakevendor

import "sync"

// IDs is the set of ids (user ids, distinct_ids) a fake holds data about,
// for a vendor that keeps one record per id; its zero value is empty and
// ready to use.
//
//	f.users.Add(fakevendor.NeedUserID("segmentfake: Seed", s))
//	return f.users.Count(s.UserIDs[fakevendor.UserIDSystem])
type IDs struct {
	mu  sync.Mutex
	set map[string]bool
}

// Add stores id.
func (ids *IDs) Add(id string) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if ids.set == nil {
		ids.set = map[string]bool{}
	}
	ids.set[id] = true
}

// Has reports whether id is held (the empty id never is).
func (ids *IDs) Has(id string) bool {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	return id != "" && ids.set[id]
}

// Count is how many records (0 or 1) are held for id.
func (ids *IDs) Count(id string) int64 {
	if ids.Has(id) {
		return 1
	}
	return 0
}

// Remove deletes id.
func (ids *IDs) Remove(id string) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	delete(ids.set, id)
}
