package promtest

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Sum scrapes a Prometheus text endpoint (url ends in /metrics) and sums the
// samples of metric name whose labels include every pair of want.
func Sum(url, name string, want map[string]string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		match := true
		for k, v := range want {
			match = match && strings.Contains(rest, k+`="`+v+`"`)
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("scrape %s: %q: %w", url, line, err)
		}
		total += v
	}
	return total, sc.Err()
}
