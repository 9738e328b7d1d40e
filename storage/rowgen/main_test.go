package main

import (
	"bytes"
	"os"
	"testing"
)

// rows_gen.go is what the generator writes today: run `go generate
// ./storage` after changing a table or the generator.
func TestGeneratedFileIsCurrent(t *testing.T) {
	want, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../rows_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("storage/rows_gen.go is stale: run go generate ./storage")
	}
}

func TestFieldName(t *testing.T) {
	for col, want := range map[string]string{
		"ts": "Ts", "ts_ns": "TsNs", "pci_bus_id": "PCIBusID", "gpu_uuid": "GPUUUID", "p_value": "PValue", "ewma_f": "EWMAF", "row": "Row",
	} {
		if got := fieldName(col); got != want {
			t.Errorf("fieldName(%q) = %q, want %q", col, got, want)
		}
	}
}

func TestUnknownTypeFails(t *testing.T) {
	if _, err := goType("AggregateFunction(count)"); err == nil {
		t.Fatal("no error for a type without a Go column")
	}
}
