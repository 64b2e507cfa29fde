package health

import "strconv"

// publishedKeys is what a publication of ids (sorted) is compared by: the
// ids and the weights of the instances, so that a new weight alone (a
// canary shifted in the registry) reaches the Setter even when the
// routable set stays the same.
func publishedKeys(insts map[string]*instanceState, ids []string) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = id
		if w := insts[id].inst.Weight; w != 0 {
			keys[i] = id + "\x00" + strconv.Itoa(w)
		}
	}
	return keys
}
