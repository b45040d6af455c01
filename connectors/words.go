package connectors

import "fmt"

// Plural counts what, for evidence: "1 contact", "3 contacts".
func Plural[N int | int64](n N, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
