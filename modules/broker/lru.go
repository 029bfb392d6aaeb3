package broker

import "container/list"

// lru is a map of at most max entries that forgets the least recently used
// one to make room. It is not safe for concurrent use.
type lru[K, V comparable] struct {
	max   int
	order *list.List // of *lruEntry, most recent first
	items map[K]*list.Element
}

type lruEntry[K, V comparable] struct {
	key K
	val V
}

func newLRU[K, V comparable](max int) *lru[K, V] {
	return &lru[K, V]{max: max, order: list.New(), items: make(map[K]*list.Element)}
}

// get returns the value of key, making it with create when it is missing,
// and marks it used.
func (l *lru[K, V]) get(key K, create func() V) V {
	if e, ok := l.items[key]; ok {
		l.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).val
	}
	if l.order.Len() >= l.max {
		oldest := l.order.Back()
		delete(l.items, oldest.Value.(*lruEntry[K, V]).key)
		l.order.Remove(oldest)
	}
	v := create()
	l.items[key] = l.order.PushFront(&lruEntry[K, V]{key: key, val: v})
	return v
}

// remove forgets key while its value is v, not one made since v was
// forgotten to make room.
func (l *lru[K, V]) remove(key K, v V) {
	if e, ok := l.items[key]; ok && e.Value.(*lruEntry[K, V]).val == v {
		delete(l.items, key)
		l.order.Remove(e)
	}
}
