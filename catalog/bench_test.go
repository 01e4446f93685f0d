package catalog

import (
	"os"
	"testing"
)

func benchCatalog(b *testing.B, file string) *Catalog {
	b.Helper()
	data, err := os.ReadFile("../examples/catalogs/" + file)
	if err != nil {
		b.Fatal(err)
	}
	c, err := Parse(data, file)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func benchQuote(b *testing.B, c *Catalog, req QuoteRequest) {
	b.Helper()
	if _, err := c.Quote(req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Quote(req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "quotes/s")
}

func BenchmarkQuoteFlat(b *testing.B) {
	c := benchCatalog(b, "wzrd-studio.yaml")
	benchQuote(b, c, QuoteRequest{Action: "fal-ai/flux/schnell"})
}

func BenchmarkQuoteTable(b *testing.B) {
	c := benchCatalog(b, "generation-api.yaml")
	benchQuote(b, c, QuoteRequest{Action: "sora-2-text-to-video", Params: map[string]any{"duration": 8.0, "resolution": "1080p"}})
}

func BenchmarkQuotePerUnitPlan(b *testing.B) {
	c := benchCatalog(b, "videodraft.yaml")
	benchQuote(b, c, QuoteRequest{Action: "google-text-to-speech", Params: map[string]any{"characters": 2000.0}, Plan: "visionary"})
}

func BenchmarkQuoteFormula(b *testing.B) {
	c := benchCatalog(b, "studiotwin.yaml")
	benchQuote(b, c, QuoteRequest{Action: "image-to-material", Params: map[string]any{"resolution": "2048x2048", "upscale": 4.0}})
}

func BenchmarkQuoteGated(b *testing.B) {
	c := benchCatalog(b, "site-builder.yaml")
	benchQuote(b, c, QuoteRequest{Action: "veo-3-1-standard", Params: map[string]any{"duration": 8.0, "resolution": "2K"}, Plan: "premium"})
}

func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile("../examples/catalogs/wzrd-studio.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "wzrd-studio.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}
