package catalogs_test

import (
	"testing"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/examples/catalogs"
)

func load(t *testing.T, name string) *catalog.Catalog {
	t.Helper()
	data, err := catalogs.FS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Parse(data, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type p = map[string]any

type golden struct {
	action  string
	params  p
	plan    string
	credits string
	reserve string // "" means equal to credits
	list    string // "" means equal to credits
}

func run(t *testing.T, file string, tests []golden) {
	t.Helper()
	c := load(t, file)
	for _, tt := range tests {
		q, err := c.Quote(catalog.QuoteRequest{Action: tt.action, Params: tt.params, Plan: tt.plan})
		if err != nil {
			t.Errorf("%s %s %v plan=%q: %v", file, tt.action, tt.params, tt.plan, err)
			continue
		}
		want := credit.MustParse(tt.credits)
		reserve, list := want, want
		if tt.reserve != "" {
			reserve = credit.MustParse(tt.reserve)
		}
		if tt.list != "" {
			list = credit.MustParse(tt.list)
		}
		if q.Credits != want || q.Reserve != reserve || q.ListCredits != list {
			t.Errorf("%s %s %v plan=%q: credits %s reserve %s list %s, want %s %s %s (breakdown %+v)",
				file, tt.action, tt.params, tt.plan, q.Credits, q.Reserve, q.ListCredits, want, reserve, list, q.Breakdown)
		}
	}
}

func TestWZRDStudio(t *testing.T) {
	t.Parallel()
	run(t, "wzrd-studio.yaml", []golden{
		{action: "fal-ai/flux/schnell", credits: "3"},
		{action: "fal-ai/nano-banana-2", credits: "4"},
		{action: "fal-ai/flux-2/flash", credits: "4"},
		{action: "fal-ai/flux/dev", credits: "5"},
		{action: "fal-ai/ideogram/v3", credits: "5"},
		{action: "fal-ai/seedream/v5/lite/text-to-image", credits: "5"},
		{action: "fal-ai/qwen-image-2/text-to-image", credits: "5"},
		{action: "fal-ai/flux-2/turbo", credits: "5"},
		{action: "fal-ai/flux-2", credits: "6"},
		{action: "fal-ai/qwen-image-2512", credits: "6"},
		{action: "fal-ai/hidream-i1-full", credits: "6"},
		{action: "fal-ai/nano-banana-pro", credits: "7"},
		{action: "fal-ai/qwen-image-2/pro/text-to-image", credits: "7"},
		{action: "fal-ai/flux-pro/kontext/text-to-image", credits: "7"},
		{action: "fal-ai/flux-pro/v1.1-ultra", credits: "8"},
		{action: "fal-ai/flux-2-pro", credits: "8"},
		{action: "fal-ai/gpt-image-1.5", credits: "8"},
		{action: "fal-ai/flux-2-max", credits: "10"},
		{action: "fal-ai/imagen4/preview/ultra", credits: "10"},
		{action: "gmi/seedream-5.0-lite", credits: "2"},
		{action: "gmi/seedream-5.0", credits: "3"},
		{action: "gmi/gemini-3.1-flash-image-preview", credits: "4"},
		{action: "fal-ai/ltx-video", credits: "16"},
		{action: "fal-ai/bytedance/seedance/v1/lite/text-to-video", credits: "18"},
		{action: "fal-ai/kling-video/o3/standard/text-to-video", credits: "20"},
		{action: "fal-ai/veo3/fast", credits: "25"},
		{action: "fal-ai/kling-video/v2.5-turbo/pro/image-to-video", credits: "22"},
		{action: "fal-ai/ltx-2.3/text-to-video", credits: "22"},
		{action: "fal-ai/kling-video/o3/standard/image-to-video", credits: "24"},
		{action: "fal-ai/minimax/video-01-live", credits: "25"},
		{action: "fal-ai/veo3", credits: "35"},
		{action: "fal-ai/kling-video/o3/pro/text-to-video", credits: "30"},
		{action: "fal-ai/sora-2/text-to-video", credits: "35"},
		{action: "fal-ai/kling-video/o3/pro/image-to-video", credits: "32"},
		{action: "fal-ai/veo3.1", credits: "40"},
		{action: "fal-ai/sora-2/text-to-video/pro", credits: "50"},
		{action: "fal-ai/minimax/speech-2.8-turbo", credits: "2"},
		{action: "fal-ai/minimax/speech-02-turbo", credits: "2"},
		{action: "fal-ai/chatterbox/text-to-speech", credits: "2"},
		{action: "fal-ai/qwen-3-tts/text-to-speech/1.7b", credits: "2"},
		{action: "fal-ai/minimax/speech-02-hd", credits: "3"},
		{action: "fal-ai/kling-video/v1/tts", credits: "3"},
		{action: "fal-ai/elevenlabs/tts/turbo-v2.5", credits: "4"},
		{action: "cassetteai/music-generator", credits: "5"},
		{action: "fal-ai/lyria2", credits: "6"},
		{action: "gmi/gemini-3.1-flash-lite", credits: "1"},
		{action: "llama-3.3-70b-versatile", credits: "1"},
		{action: "llama-3.1-8b-instant", credits: "1"},
		{action: "gmi/glm-5.1", credits: "2"},
		{action: "gmi/openai-o4-mini", credits: "3"},
		{action: "gmi/deepseek-r1", credits: "4"},
		{action: "gmi/claude-opus-4.7", credits: "5"},
		// Director's Cut, by the compose model's id and by its own name.
		{action: "fal-ai/ffmpeg-api/compose", credits: "12"},
		{action: "directors-cut", credits: "12"},
		// Shot image / shot video with no model: the category defaults.
		{action: "image", credits: "4"},
		{action: "video", credits: "20"},
		{action: "audio", credits: "4"},
		{action: "text", credits: "4"},
		{action: "fal-ai/flux/schnell", plan: "pro", credits: "3"},
	})
}

func TestWZRDLabelsAndDefaults(t *testing.T) {
	t.Parallel()
	c := load(t, "wzrd-studio.yaml")
	q, err := c.Quote(catalog.QuoteRequest{Action: "fal-ai/flux/schnell"})
	if err != nil || q.Label != "FLUX Schnell (3 credits)" {
		t.Fatalf("label %q, %v", q.Label, err)
	}
	q, _ = c.Quote(catalog.QuoteRequest{Action: "gmi/deepseek-r1"})
	if q.Label != "DeepSeek R1 (4 credits)" {
		t.Errorf("label %q", q.Label)
	}
	q, _ = c.Quote(catalog.QuoteRequest{Action: "image"})
	if q.Action != "fal-ai/nano-banana-2" || q.Name != "Nano Banana 2" {
		t.Errorf("image default: %s %s", q.Action, q.Name)
	}
	if d := c.CategoryDefaults(); d["video"] != "fal-ai/kling-video/o3/standard/text-to-video" {
		t.Errorf("video default %q", d["video"])
	}
	if _, ok := c.Plan("pro"); !ok {
		t.Error("plan pro missing")
	}
	if p, ok := c.Pack("pack_100"); !ok || p.Credits != credit.Credits(100) {
		t.Errorf("pack_100: %+v", p)
	}
	if c.TopUpURL == "" {
		t.Error("top_up_url missing")
	}
	_, err = c.Quote(catalog.QuoteRequest{Action: "fal-ai/flux/schnel"})
	e, ok := err.(*scrip.Error)
	if !ok || e.Code != scrip.EActionNotFound {
		t.Fatalf("err %v", err)
	}
	if s := e.Details["suggestions"].([]string); len(s) == 0 || s[0] != "fal-ai/flux/schnell" {
		t.Errorf("suggestions %v", s)
	}
}

func TestSiteBuilder(t *testing.T) {
	t.Parallel()
	run(t, "site-builder.yaml", []golden{
		{action: "nano-banana-pro", plan: "premium", credits: "20"},
		{action: "seedream-4-5", plan: "basic", credits: "18"},
		{action: "seedream-4-5", credits: "18"},
		{action: "image", plan: "basic", credits: "18"},
		{action: "gemini-2-5-flash", plan: "basic", credits: "8"},
		{action: "flux-pro", plan: "pro", credits: "16"},
		{action: "flux-schnell", plan: "pro", credits: "12"},
		{action: "image-edit", plan: "basic", credits: "12"},
		{action: "upscale", params: p{"upscale": 2}, credits: "4"},
		{action: "upscale", params: p{"upscale": 4}, credits: "4"},
		{action: "background-removal", credits: "4"},
		// 2K/4K output: 2× base, Premium+.
		{action: "seedream-4-5", params: p{"resolution": "2K"}, plan: "premium", credits: "36"},
		{action: "seedream-4-5", params: p{"resolution": "4K"}, plan: "premium", credits: "36"},
		{action: "nano-banana-pro", params: p{"resolution": "4K"}, plan: "premium", credits: "40"},
		{action: "flux-schnell", params: p{"resolution": "2K"}, plan: "premium", credits: "24"},
		// Video: 32 cr/sec.
		{action: "veo-3-1-standard", params: p{"duration": 8, "resolution": "720p"}, credits: "256"},
		{action: "veo-3-1-standard", params: p{"duration": 8, "resolution": "1080p"}, credits: "256"},
		{action: "veo-3-1-standard", params: p{"duration": 5}, credits: "160"},
		{action: "veo-3-1-standard", params: p{"duration": 2.5}, credits: "80"},
		{action: "video", credits: "256"},
		// ~150: 18.75 cr/sec makes 8 s exactly the printed 150.
		{action: "veo-3-1-relaxed", params: p{"duration": 8}, credits: "150"},
		// ~680, ~512, ~1,024, ~60: each is exactly its printed rate × seconds.
		{action: "veo-3-1-hd", params: p{"duration": 8}, plan: "premium", credits: "680"},
		{action: "veo-3-1-standard", params: p{"duration": 8, "resolution": "2K"}, plan: "premium", credits: "512"},
		{action: "veo-3-1-standard", params: p{"duration": 8, "resolution": "4K"}, plan: "premium", credits: "1024"},
		{action: "ltx-video-extend", params: p{"duration": 4}, plan: "pro", credits: "60"},
		{action: "chat-edit", credits: "0.5"},
		{action: "prompt-enhancement", credits: "1"},
		{action: "brainstorm-prompt", credits: "1"},
		{action: "inline-text-edit", credits: "0"},
		{action: "design-preset-apply", credits: "0"},
		{action: "frame-extraction", credits: "0"},
		{action: "html-assembly", credits: "8"},
		// 400–600: charge the bottom, hold the top.
		{action: "full-regen-fallback", credits: "400", reserve: "600"},
		{action: "business-os-chat", plan: "pro", credits: "15"},
		{action: "business-os-chat", plan: "premium", credits: "15"},
	})
}

func TestSiteBuilderGates(t *testing.T) {
	t.Parallel()
	c := load(t, "site-builder.yaml")
	tests := []struct {
		action string
		params p
		plan   string
		want   string // lowest plan, "" if allowed
	}{
		{"nano-banana-pro", nil, "", "premium"},
		{"nano-banana-pro", nil, "basic", "premium"},
		{"nano-banana-pro", nil, "pro", "premium"},
		{"nano-banana-pro", nil, "premium", ""},
		{"flux-pro", nil, "basic", "pro"},
		{"flux-pro", nil, "pro", ""},
		{"flux-pro", nil, "premium", ""},
		{"flux-schnell", nil, "", "pro"},
		{"flux-pro", p{"resolution": "2K"}, "pro", "premium"},
		{"seedream-4-5", p{"resolution": "4K"}, "pro", "premium"},
		{"seedream-4-5", p{"resolution": "1K"}, "basic", ""},
		{"veo-3-1-standard", p{"resolution": "2K"}, "pro", "premium"},
		{"veo-3-1-standard", p{"resolution": "1080p"}, "basic", ""},
		{"veo-3-1-hd", nil, "pro", "premium"},
		{"ltx-video-extend", nil, "basic", "pro"},
		{"business-os-chat", nil, "basic", "pro"},
	}
	for _, tt := range tests {
		_, err := c.Quote(catalog.QuoteRequest{Action: tt.action, Params: tt.params, Plan: tt.plan})
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s %v on %q: %v", tt.action, tt.params, tt.plan, err)
			}
			continue
		}
		e, ok := err.(*scrip.Error)
		if !ok || e.Code != scrip.EPlanRequired || e.Details["plan"] != tt.want {
			t.Errorf("%s %v on %q: got %v, want plan_required %s", tt.action, tt.params, tt.plan, err, tt.want)
		}
	}
	b, _ := c.Plan("basic")
	if b.MonthlyCredits != credit.Credits(1500) || b.Quotas["sites"] != 2 || b.Rollover.Policy != catalog.RolloverNone || !b.Upgrade.CarryUnspent {
		t.Errorf("basic plan: %+v", b)
	}
	plans := c.Plans()
	if len(plans) != 3 || plans[0].Code != "basic" || plans[1].Code != "pro" || plans[2].Code != "premium" {
		t.Errorf("plans out of tier order")
	}
}

// The seed's phase table gives hero image 20–60, video ~256, HTML ~8 and
// frames 0: the catalog's workflow is the low end, 284. The seed's headline
// "approximately 400–600 credits" does not follow from its own phase lines;
// the full-regen fallback holds that range instead.
func TestSiteBuilderFullSite(t *testing.T) {
	t.Parallel()
	c := load(t, "site-builder.yaml")
	w, ok := c.Workflow("full-site")
	if !ok {
		t.Fatal("no full-site workflow")
	}
	est, err := c.Estimate(w.Steps)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"20", "256", "8", "0"}
	for i, l := range est.Lines {
		if l.Credits != credit.MustParse(want[i]) {
			t.Errorf("line %d %s: %s, want %s", i, l.Label, l.Credits, want[i])
		}
	}
	if est.Total != credit.Credits(284) {
		t.Errorf("total %s, want 284", est.Total)
	}
	// Under Basic, the hero image model is gated.
	if _, err := c.EstimatePlan("basic", w.Steps); scrip.ErrorCode(err) != scrip.EPlanRequired {
		t.Errorf("EstimatePlan basic: %v", err)
	}
}

func TestGenerationAPI(t *testing.T) {
	t.Parallel()
	d := func(n int, r string) p { return p{"duration": n, "resolution": r} }
	run(t, "generation-api.yaml", []golden{
		{action: "gpt-image-2", credits: "3"},
		{action: "gpt-image-2", params: p{"input_images": 4}, credits: "3"},
		{action: "google/nano-banana", params: p{"input_images": 10}, credits: "3"},
		{action: "nano-banana-2", params: p{"resolution": "1K"}, credits: "4"},
		{action: "nano-banana-2", params: p{"resolution": "2K"}, credits: "6"},
		{action: "nano-banana-2", params: p{"resolution": "4K"}, credits: "8"},
		{action: "nano-banana-pro", params: p{"resolution": "2K"}, credits: "12"},
		{action: "nano-banana-pro", params: p{"resolution": "4K"}, credits: "20"},
		{action: "kling/v2-1-standard", params: p{"duration": 5}, credits: "11"},
		{action: "kling/v2-1-standard", params: p{"duration": 10}, credits: "22"},
		{action: "kling/v2-1-pro", params: p{"duration": 5}, credits: "21"},
		{action: "kling/v2-1-pro", params: p{"duration": 10.0}, credits: "42"},
		{action: "kling/v2-1-master-text-to-video", params: p{"duration": "5"}, credits: "67"},
		{action: "kling/v2-1-master-text-to-video", params: p{"duration": 10}, credits: "134"},
		{action: "sora-2-text-to-video", params: d(4, "720p"), credits: "5"},
		{action: "sora-2-text-to-video", params: d(8, "720p"), credits: "10"},
		{action: "sora-2-text-to-video", params: d(12, "720p"), credits: "20"},
		{action: "sora-2-text-to-video", params: d(4, "1080p"), credits: "8"},
		{action: "sora-2-text-to-video", params: d(8, "1080p"), credits: "15"},
		{action: "sora-2-text-to-video", params: d(12, "1080p"), credits: "30"},
		{action: "sora-2-pro-text-to-video", params: d(4, "720p"), credits: "16"},
		{action: "sora-2-pro-text-to-video", params: d(8, "720p"), credits: "32"},
		{action: "sora-2-pro-text-to-video", params: d(12, "720p"), credits: "64"},
		{action: "sora-2-pro-text-to-video", params: d(4, "1080p"), credits: "24"},
		{action: "sora-2-pro-text-to-video", params: d(8, "1080p"), credits: "48"},
		{action: "sora-2-pro-text-to-video", params: d(12, "1080p"), credits: "96"},
		{action: "sora-2-image-to-video", params: d(4, "720p"), credits: "5"},
		{action: "sora-2-image-to-video", params: d(8, "720p"), credits: "10"},
		{action: "sora-2-image-to-video", params: d(12, "720p"), credits: "20"},
		{action: "sora-2-image-to-video", params: d(4, "1080p"), credits: "8"},
		{action: "sora-2-image-to-video", params: d(8, "1080p"), credits: "15"},
		{action: "sora-2-image-to-video", params: d(12, "1080p"), credits: "30"},
		{action: "hailuo/02-text-to-video-standard", params: p{"duration": 5}, credits: "13"},
		{action: "hailuo/02-text-to-video-standard", params: p{"duration": 10}, credits: "21"},
		{action: "hailuo/02-text-to-video-pro", params: p{"duration": 5}, credits: "24"},
		{action: "hailuo/02-text-to-video-pro", params: p{"duration": 10}, credits: "48"},
		{action: "hailuo/02-image-to-video-standard", params: p{"duration": 5}, credits: "13"},
		{action: "hailuo/02-image-to-video-standard", params: p{"duration": 10}, credits: "21"},
		{action: "hailuo/02-image-to-video-pro", params: p{"duration": 5}, credits: "24"},
		{action: "hailuo/02-image-to-video-pro", params: p{"duration": 10}, credits: "48"},
		{action: "veo3_fast", credits: "9"},
		{action: "veo3", credits: "63"},
		{action: "veo3_lite", credits: "5"},
		{action: "wan/2-6-text-to-video", params: d(5, "720p"), credits: "30"},
		{action: "wan/2-6-text-to-video", params: d(10, "720p"), credits: "60"},
		{action: "wan/2-6-text-to-video", params: d(15, "720p"), credits: "90"},
		{action: "wan/2-6-text-to-video", params: d(5, "1080p"), credits: "45"},
		{action: "wan/2-6-text-to-video", params: d(10, "1080p"), credits: "89"},
		{action: "wan/2-6-text-to-video", params: d(15, "1080p"), credits: "133"},
		{action: "wan/2-6-image-to-video", params: d(5, "720p"), credits: "30"},
		{action: "wan/2-6-image-to-video", params: d(10, "720p"), credits: "60"},
		{action: "wan/2-6-image-to-video", params: d(15, "720p"), credits: "90"},
		{action: "wan/2-6-image-to-video", params: d(5, "1080p"), credits: "45"},
		{action: "wan/2-6-image-to-video", params: d(10, "1080p"), credits: "89"},
		{action: "wan/2-6-image-to-video", params: d(15, "1080p"), credits: "133"},
		{action: "bytedance/seedance-1.5-pro", params: d(5, "720p"), credits: "18"},
		{action: "bytedance/seedance-1.5-pro", params: d(10, "720p"), credits: "36"},
		{action: "bytedance/seedance-1.5-pro", params: d(5, "1080p"), credits: "27"},
		{action: "bytedance/seedance-1.5-pro", params: d(10, "1080p"), credits: "54"},
	})
}

func TestStudioTwin(t *testing.T) {
	t.Parallel()
	m := func(r string, u int) p { return p{"resolution": r, "upscale": u} }
	run(t, "studiotwin.yaml", []golden{
		{action: "text-to-motion", params: p{"model": "hy-motion-1.0"}, credits: "5"},
		{action: "text-to-motion", params: p{"model": "kimodo"}, credits: "5"},
		{action: "motion-edit", credits: "5"},
		{action: "motion-stitch", credits: "5"},
		{action: "trajectory-control", credits: "5"},
		{action: "text-to-environment-map", credits: "20"},
		{action: "image-to-environment-map", credits: "25"},
		{action: "environment-map-to-world", credits: "80"},
		{action: "image-to-3d-mesh", params: p{"model": "hunyuan-3d-v2.1"}, credits: "25"},
		{action: "image-to-3d-mesh", params: p{"model": "tripo3d-p1"}, credits: "75"},
		{action: "image-to-3d-mesh", params: p{"model": "tripo3d-v3"}, credits: "45"},
		{action: "texture-to-material", credits: "20"},
		// Text to Material table, every cell.
		{action: "text-to-material", params: m("512x512", 1), credits: "5"},
		{action: "text-to-material", params: m("512x512", 2), credits: "6"},
		{action: "text-to-material", params: m("512x512", 4), credits: "8"},
		{action: "text-to-material", params: m("1024x1024", 1), credits: "12"},
		{action: "text-to-material", params: m("1024x1024", 2), credits: "18"},
		{action: "text-to-material", params: m("1024x1024", 4), credits: "24"},
		{action: "text-to-material", params: m("2048x2048", 1), credits: "42"},
		{action: "text-to-material", params: m("2048x2048", 2), credits: "66"},
		{action: "text-to-material", params: m("2048x2048", 4), credits: "90"},
		// Image to Material table, every cell.
		{action: "image-to-material", params: m("512x512", 1), credits: "16"},
		{action: "image-to-material", params: m("512x512", 2), credits: "17"},
		{action: "image-to-material", params: m("512x512", 4), credits: "19"},
		{action: "image-to-material", params: m("1024x1024", 1), credits: "23"},
		{action: "image-to-material", params: m("1024x1024", 2), credits: "29"},
		{action: "image-to-material", params: m("1024x1024", 4), credits: "35"},
		{action: "image-to-material", params: m("2048x2048", 1), credits: "53"},
		{action: "image-to-material", params: m("2048x2048", 2), credits: "77"},
		{action: "image-to-material", params: m("2048x2048", 4), credits: "101"},
		// Sound effect: round(max(duration, 5) × 0.6); auto holds 18 (30 s).
		{action: "text-to-sound-effect", params: p{"duration": 1}, credits: "3"},
		{action: "text-to-sound-effect", params: p{"duration": 5}, credits: "3"},
		{action: "text-to-sound-effect", params: p{"duration": 7}, credits: "4"},   // 4.2
		{action: "text-to-sound-effect", params: p{"duration": 7.5}, credits: "5"}, // 4.5 rounds away from zero
		{action: "text-to-sound-effect", params: p{"duration": 10}, credits: "6"},
		{action: "text-to-sound-effect", params: p{"duration": 30}, credits: "18"},
		{action: "text-to-sound-effect", params: p{"duration": "auto"}, credits: "18"},
		{action: "text-to-sound-effect", credits: "18"},
		{action: "text-to-sound-effect", plan: "creator", credits: "18"},
	})
}

func TestStudioTwinAutoReserveThenSettle(t *testing.T) {
	t.Parallel()
	c := load(t, "studiotwin.yaml")
	hold, err := c.Quote(catalog.QuoteRequest{Action: "text-to-sound-effect", Params: p{"duration": "auto"}})
	if err != nil {
		t.Fatal(err)
	}
	if hold.Reserve != credit.Credits(18) || hold.Params["duration"] != "auto" {
		t.Fatalf("auto: reserve %s params %v", hold.Reserve, hold.Params)
	}
	final, err := c.Quote(catalog.QuoteRequest{Action: "text-to-sound-effect", Params: p{"duration": 12}})
	if err != nil {
		t.Fatal(err)
	}
	refund, _ := hold.Reserve.Sub(final.Credits)
	if final.Credits != credit.Credits(7) || refund != credit.Credits(11) { // round(7.2)
		t.Errorf("settle at 12 s: %s, refund %s", final.Credits, refund)
	}
}

func TestVideoDraft(t *testing.T) {
	t.Parallel()
	run(t, "videodraft.yaml", []golden{
		{action: "flux-schnell", credits: "5"},
		{action: "flux-kontext-pro", credits: "5"},
		{action: "flux-1-1-pro", credits: "5"},
		{action: "gpt-image-1", credits: "10"},
		{action: "imagen-4", credits: "10"},
		{action: "luma-ray-flash", credits: "30"},
		{action: "luma-ray-2", credits: "90"},
		{action: "kling-v2-1", credits: "25"},
		{action: "google-veo2", params: p{"duration": 5}, credits: "300"},
		{action: "google-veo2", params: p{"duration": 8}, credits: "400"},
		{action: "google-veo3", credits: "600"},
		{action: "google-veo3-fast", credits: "320"},
		{action: "google-text-to-speech", params: p{"characters": 600}, credits: "6"},
		{action: "google-text-to-speech", params: p{"characters": 2000}, credits: "20"},
		{action: "google-text-to-speech", params: p{"characters": 1}, credits: "1"},
		{action: "google-text-to-speech", params: p{"characters": 100}, credits: "1"},
		{action: "google-text-to-speech", params: p{"characters": 101}, credits: "2"},
		{action: "silent-audio", credits: "0"},
		{action: "script-generation", params: p{"length": "short"}, credits: "5"},
		{action: "script-generation", params: p{"length": "medium"}, credits: "10"},
		{action: "script-generation", params: p{"length": "long"}, credits: "20"},
		{action: "scene-enhancement", credits: "5"},
		{action: "ai-agent-consultation", params: p{"depth": "standard"}, credits: "5"},
		{action: "ai-agent-consultation", params: p{"depth": "extended"}, credits: "10"},
		// Unlimited speech on Visionary and Studio: free, still recorded at list.
		{action: "google-text-to-speech", params: p{"characters": 600}, plan: "pro", credits: "6"},
		{action: "google-text-to-speech", params: p{"characters": 600}, plan: "visionary", credits: "0", list: "6"},
		{action: "google-text-to-speech", params: p{"characters": 2000}, plan: "visionary_annual", credits: "0", list: "20"},
		{action: "google-text-to-speech", params: p{"characters": 600}, plan: "studio", credits: "0", list: "6"},
		{action: "flux-schnell", plan: "visionary", credits: "5"},
		{action: "imagen-4", plan: "studio", credits: "0", list: "10"},
		{action: "image", plan: "studio_annual", credits: "0", list: "5"},
		{action: "kling-v2-1", plan: "studio", credits: "25"},
	})
}

func TestVideoDraftUnlimitedIsRecorded(t *testing.T) {
	t.Parallel()
	c := load(t, "videodraft.yaml")
	q, err := c.Quote(catalog.QuoteRequest{Action: "google-text-to-speech", Params: p{"characters": 600}, Plan: "visionary"})
	if err != nil {
		t.Fatal(err)
	}
	if !q.Unlimited || q.Credits != 0 || q.Reserve != 0 || q.ListCredits != credit.Credits(6) {
		t.Errorf("%+v", q)
	}
}

func TestVideoDraftWorkedExamples(t *testing.T) {
	t.Parallel()
	c := load(t, "videodraft.yaml")
	tests := []struct {
		workflow string
		lines    []string
		total    int64
	}{
		{"marketing-video-60s", []string{"10", "30", "50", "6"}, 96},
		{"educational-video-3min", []string{"20", "40", "40", "1200", "20"}, 1320},
	}
	for _, tt := range tests {
		w, ok := c.Workflow(tt.workflow)
		if !ok {
			t.Fatalf("no workflow %s", tt.workflow)
		}
		est, err := c.Estimate(w.Steps)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range est.Lines {
			if l.Credits != credit.MustParse(tt.lines[i]) {
				t.Errorf("%s line %d %s: %s, want %s", tt.workflow, i, l.Label, l.Credits, tt.lines[i])
			}
		}
		if est.Total != credit.Credits(tt.total) {
			t.Errorf("%s total %s, want %d", tt.workflow, est.Total, tt.total)
		}
	}
	// The 12 mixed images of example 2 come to the seed's 80.
	w, _ := c.Workflow("educational-video-3min")
	est, _ := c.Estimate(w.Steps)
	if s, _ := est.Lines[1].Credits.Add(est.Lines[2].Credits); s != credit.Credits(80) {
		t.Errorf("mixed images %s, want 80", s)
	}
	// On Studio, the images and the voiceover are free.
	est, err := c.EstimatePlan("studio", w.Steps)
	if err != nil || est.Total != credit.Credits(1220) {
		t.Errorf("studio estimate %s, %v", est.Total, err)
	}
}

func TestVideoDraftPlans(t *testing.T) {
	t.Parallel()
	c := load(t, "videodraft.yaml")
	want := map[string]int64{"starter": 200, "pro": 2500, "pro_annual": 2500, "visionary": 7500, "visionary_annual": 7500, "studio": 30000, "studio_annual": 30000}
	for code, credits := range want {
		pl, ok := c.Plan(code)
		if !ok || pl.MonthlyCredits != credit.Credits(credits) {
			t.Errorf("plan %s: %+v", code, pl)
		}
	}
	if pl, _ := c.Plan("starter"); pl.Price.Amount != 0 {
		t.Error("starter is free")
	}
	if pl, _ := c.Plan("studio_annual"); pl.Interval != "year" {
		t.Error("studio_annual is yearly")
	}
}

func TestAllExamplesLoad(t *testing.T) {
	t.Parallel()
	entries, err := catalogs.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 {
		t.Errorf("%d example catalogs, want 5", len(entries))
	}
	for _, e := range entries {
		c := load(t, e.Name())
		for _, a := range c.Actions() {
			// Every action prices with its defaults, or says which parameter it needs.
			_, err := c.Quote(catalog.QuoteRequest{Action: a.ID})
			if code := scrip.ErrorCode(err); code != "" && code != scrip.EInvalidParam && code != scrip.EPlanRequired {
				t.Errorf("%s %s: %v", e.Name(), a.ID, err)
			}
		}
	}
}
