/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "codechat-metrics.h"
#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"
#include "codechat-version.h"

/*
 * GET /metrics: a strict parser of the Prometheus text format (0.0.4)
 * checks every scrape, and the counters of a real daemon are checked
 * against what the test did to it.  The renderer's cost is measured
 * directly.
 */

#define T CODECHAT_TEST_TIMEOUT_MS

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* a daemon left running by a failed assertion would outlive the test */
static pid_t daemon_pid;

static void
abort_handler(int sig)
{
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* the parser */

typedef struct {
	gchar *type;   /* (owned) counter, gauge or histogram */
	gboolean help; /* a HELP line came */
	gboolean samples;
} Family;

static void
family_free(Family *f)
{
	g_free(f->type);
	g_free(f);
}

static gboolean
is_name(const gchar *s, gsize len)
{
	if (len == 0 || !(g_ascii_isalpha(s[0]) || s[0] == '_' || s[0] == ':'))
		return FALSE;
	for (gsize i = 1; i < len; i++) {
		if (!(g_ascii_isalnum(s[i]) || s[i] == '_' || s[i] == ':'))
			return FALSE;
	}
	return TRUE;
}

static gboolean
fail(GError **error, guint line, const gchar *what)
{
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "line %u: %s", line, what);
	return FALSE;
}

/* label="value",…} after the {; *p ends past the }; le gets the le value */
static gboolean
parse_labels(const gchar **p, gchar **le, guint line, GError **error)
{
	const gchar *s = *p;

	if (*s == '}')
		return fail(error, line, "empty label set");
	for (;;) {
		const gchar *name = s;
		g_autoptr(GString) value = g_string_new(NULL);

		while (g_ascii_isalnum(*s) || *s == '_')
			s++;
		if (!is_name(name, s - name) || s[0] != '=' || s[1] != '"')
			return fail(error, line, "bad label name");
		s += 2;
		while (*s != '"') {
			if (*s == '\0' || *s == '\n')
				return fail(error, line, "unterminated label value");
			if (*s == '\\') {
				s++;
				if (*s == 'n')
					g_string_append_c(value, '\n');
				else if (*s == '\\' || *s == '"')
					g_string_append_c(value, *s);
				else
					return fail(error, line, "bad escape in a label value");
			} else {
				g_string_append_c(value, *s);
			}
			s++;
		}
		s++;
		if (strncmp(name, "le=", 3) == 0) {
			g_free(*le);
			*le = g_strdup(value->str);
		}
		if (*s == '}')
			break;
		if (*s != ',')
			return fail(error, line, "expected , or } after a label");
		s++;
	}
	*p = s + 1;
	return TRUE;
}

static gboolean
parse_value(const gchar *s, gdouble *value)
{
	gchar *end = NULL;

	if (g_strcmp0(s, "+Inf") == 0) {
		*value = INFINITY;
		return TRUE;
	}
	if (*s == '\0' || g_ascii_isspace(*s))
		return FALSE;
	*value = g_ascii_strtod(s, &end);
	return end != NULL && *end == '\0';
}

/* the family a sample belongs to: histograms have suffixed samples */
static Family *
lookup_family(GHashTable *families, const gchar *name, gchar **family_name)
{
	static const gchar *const suffixes[] = {"_bucket", "_sum", "_count"};
	Family *f = g_hash_table_lookup(families, name);

	if (f != NULL) {
		*family_name = g_strdup(name);
		return f;
	}
	for (guint i = 0; i < G_N_ELEMENTS(suffixes); i++) {
		if (g_str_has_suffix(name, suffixes[i])) {
			g_autofree gchar *base =
			    g_strndup(name, strlen(name) - strlen(suffixes[i]));
			f = g_hash_table_lookup(families, base);
			if (f != NULL && g_strcmp0(f->type, "histogram") == 0) {
				*family_name = g_steal_pointer(&base);
				return f;
			}
		}
	}
	return NULL;
}

/* the buckets of one histogram, in the order of the text */
typedef struct {
	GArray *bounds; /* gdouble */
	GArray *counts; /* gdouble */
} Buckets;

static void
buckets_free(Buckets *b)
{
	g_array_unref(b->bounds);
	g_array_unref(b->counts);
	g_free(b);
}

/*
 * Returns: (transfer full): "name{labels}" as written -> gdouble *, or
 * %NULL with @error for anything the format does not allow: a sample
 * without HELP and TYPE before it, a bad name, label or value, a
 * repeated series, a counter not named _total, or a histogram whose
 * buckets are not cumulative, do not end in +Inf, or disagree with
 * _count, or lack _sum
 */
static GHashTable *
exposition_parse(const gchar *text, GError **error)
{
	g_autoptr(GHashTable) samples =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_autoptr(GHashTable) families =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)family_free);
	g_autoptr(GHashTable) buckets =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)buckets_free);
	g_auto(GStrv) lines = NULL;
	GHashTableIter iter;
	const gchar *name;
	Family *f;
	guint n_lines;

	if (*text == '\0' || !g_str_has_suffix(text, "\n")) {
		fail(error, 0, "the text must end with a newline");
		return NULL;
	}
	lines = g_strsplit(text, "\n", -1);
	n_lines = g_strv_length(lines) - 1;
	for (guint i = 0; i < n_lines; i++) {
		const gchar *l = lines[i];
		guint ln = i + 1;

		if (l[0] == '#') {
			g_auto(GStrv) parts = g_strsplit(l, " ", 4);
			if (g_strv_length(parts) < 4 || g_strcmp0(parts[0], "#") != 0 ||
			    (g_strcmp0(parts[1], "HELP") != 0 &&
			     g_strcmp0(parts[1], "TYPE") != 0) ||
			    !is_name(parts[2], strlen(parts[2])) || parts[3][0] == '\0') {
				fail(error, ln, "bad comment line");
				return NULL;
			}
			f = g_hash_table_lookup(families, parts[2]);
			if (f == NULL) {
				f = g_new0(Family, 1);
				g_hash_table_insert(families, g_strdup(parts[2]), f);
			}
			if (f->samples) {
				fail(error, ln, "HELP or TYPE after the family's samples");
				return NULL;
			}
			if (g_strcmp0(parts[1], "HELP") == 0) {
				if (f->help || f->type != NULL) {
					fail(error, ln, "HELP twice, or after TYPE");
					return NULL;
				}
				f->help = TRUE;
			} else {
				if (f->type != NULL || !f->help) {
					fail(error, ln, "TYPE twice, or without HELP before it");
					return NULL;
				}
				if (g_strcmp0(parts[3], "counter") != 0 &&
				    g_strcmp0(parts[3], "gauge") != 0 &&
				    g_strcmp0(parts[3], "histogram") != 0) {
					fail(error, ln, "unknown TYPE");
					return NULL;
				}
				if (g_strcmp0(parts[3], "counter") == 0 &&
				    !g_str_has_suffix(parts[2], "_total")) {
					fail(error, ln, "a counter's name must end in _total");
					return NULL;
				}
				f->type = g_strdup(parts[3]);
			}
			continue;
		}
		{
			const gchar *p = l;
			g_autofree gchar *sample_name = NULL;
			g_autofree gchar *family_name = NULL;
			g_autofree gchar *key = NULL;
			g_autofree gchar *le = NULL;
			gdouble value;

			while (g_ascii_isalnum(*p) || *p == '_' || *p == ':')
				p++;
			if (!is_name(l, p - l)) {
				fail(error, ln, "bad metric name");
				return NULL;
			}
			sample_name = g_strndup(l, p - l);
			if (*p == '{') {
				p++;
				if (!parse_labels(&p, &le, ln, error))
					return NULL;
			}
			if (*p != ' ') {
				fail(error, ln, "expected one space before the value");
				return NULL;
			}
			key = g_strndup(l, p - l);
			if (!parse_value(p + 1, &value)) {
				fail(error, ln, "bad value");
				return NULL;
			}
			f = lookup_family(families, sample_name, &family_name);
			if (f == NULL || f->type == NULL) {
				fail(error, ln, "a sample without HELP and TYPE");
				return NULL;
			}
			if (g_strcmp0(f->type, "histogram") == 0 &&
			    g_strcmp0(sample_name, family_name) == 0) {
				fail(error, ln, "a histogram sample needs _bucket, _sum or _count");
				return NULL;
			}
			if (g_strcmp0(f->type, "histogram") != 0 && value < 0) {
				fail(error, ln, "a negative counter or gauge here");
				return NULL;
			}
			f->samples = TRUE;
			if (g_hash_table_contains(samples, key)) {
				fail(error, ln, "a series twice");
				return NULL;
			}
			g_hash_table_insert(samples,
					    g_strdup(key),
					    g_memdup2(&value, sizeof value));
			if (g_str_has_suffix(sample_name, "_bucket") &&
			    g_strcmp0(f->type, "histogram") == 0) {
				Buckets *b = g_hash_table_lookup(buckets, family_name);
				gdouble bound;

				if (le == NULL || !parse_value(le, &bound)) {
					fail(error, ln, "a bucket without a valid le");
					return NULL;
				}
				if (b == NULL) {
					b = g_new0(Buckets, 1);
					b->bounds = g_array_new(FALSE, FALSE, sizeof(gdouble));
					b->counts = g_array_new(FALSE, FALSE, sizeof(gdouble));
					g_hash_table_insert(buckets, g_strdup(family_name), b);
				}
				if (b->bounds->len > 0 &&
				    (bound <=
					 g_array_index(b->bounds, gdouble, b->bounds->len - 1) ||
				     value <
					 g_array_index(b->counts, gdouble, b->counts->len - 1))) {
					fail(error, ln, "buckets not ascending or not cumulative");
					return NULL;
				}
				g_array_append_val(b->bounds, bound);
				g_array_append_val(b->counts, value);
			}
		}
	}

	g_hash_table_iter_init(&iter, families);
	while (g_hash_table_iter_next(&iter, (gpointer *)&name, (gpointer *)&f)) {
		g_autofree gchar *count_key = g_strconcat(name, "_count", NULL);
		g_autofree gchar *sum_key = g_strconcat(name, "_sum", NULL);
		Buckets *b;
		gdouble *count;

		if (!f->help || f->type == NULL) {
			fail(error, 0, "a family without HELP or TYPE");
			return NULL;
		}
		if (g_strcmp0(f->type, "histogram") != 0)
			continue;
		b = g_hash_table_lookup(buckets, name);
		count = g_hash_table_lookup(samples, count_key);
		if (b == NULL || count == NULL || !g_hash_table_contains(samples, sum_key)) {
			fail(error, 0, "a histogram without buckets, _sum or _count");
			return NULL;
		}
		if (!isinf(g_array_index(b->bounds, gdouble, b->bounds->len - 1)) ||
		    g_array_index(b->counts, gdouble, b->counts->len - 1) != *count) {
			fail(error, 0, "the last bucket must be +Inf and equal _count");
			return NULL;
		}
	}
	return g_steal_pointer(&samples);
}

static gdouble
sample(GHashTable *samples, const gchar *key)
{
	gdouble *value = g_hash_table_lookup(samples, key);

	if (value == NULL)
		g_error("no sample %s", key);
	return *value;
}

/* the parser must refuse what the format does not allow, or the checks
 * below could not fail */
static void
test_parser(void)
{
	static const gchar *const bad[] = {
	    "",
	    "# HELP a_total x\n# TYPE a_total counter\na_total 1",
	    "a_total 1\n",
	    "# TYPE a_total counter\na_total 1\n",
	    "# HELP a_total x\n# TYPE a_total counter\na_total  1\n",
	    "# HELP a_total x\n# TYPE a_total counter\na_total one\n",
	    "# HELP a x\n# TYPE a counter\na 1\n",
	    "# HELP a x\n# TYPE a gauge\na{l=\"x} 1\n",
	    "# HELP a x\n# TYPE a gauge\na{l=\"\\t\"} 1\n",
	    "# HELP a x\n# TYPE a gauge\na{l=\"x\"} 1\na{l=\"x\"} 2\n",
	    "# HELP a x\n# TYPE a gauge\na 1\n# HELP b x\n",
	    "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
	    "h_sum 1\nh_count 1\n",
	    "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
	    "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
	    "h_sum 1\nh_count 3\n",
	    "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
	};
	static const gchar good[] = "# HELP h x y\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
				    "h_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n"
				    "# HELP g x\n# TYPE g gauge\ng{a=\"q\\\"\\\\\\n\",b=\"\"} 3\n";
	g_autoptr(GHashTable) samples = NULL;
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GHashTable) s = exposition_parse(bad[i], &error);
		g_assert_null(s);
		g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
		g_clear_error(&error);
	}
	samples = exposition_parse(good, &error);
	g_assert_no_error(error);
	g_assert_cmpfloat(sample(samples, "h_count"), ==, 2);
	g_assert_cmpfloat(sample(samples, "g{a=\"q\\\"\\\\\\n\",b=\"\"}"), ==, 3);
}

/* the renderer alone */

static void
test_render_escape(void)
{
	g_autoptr(CodechatMetrics) metrics = codechat_metrics_new();
	CodechatMetricsRoom rooms[] = {{"a\\b\"c\nd", 2}, {"plain", 1}};
	CodechatMetricsGauges gauges = {
	    .connections = 3,
	    .rooms = 2,
	    .uptime_seconds = 1.5,
	    .version = "1.0\"x",
	    .by_room = rooms,
	    .n_by_room = G_N_ELEMENTS(rooms),
	};
	g_autoptr(GString) text = NULL;
	g_autoptr(GHashTable) samples = NULL;
	g_autoptr(GError) error = NULL;

	codechat_metrics_observe_commit(metrics, 0.0003);
	codechat_metrics_observe_commit(metrics, 0.002);
	codechat_metrics_observe_commit(metrics, 7);
	text = codechat_metrics_render(metrics, &gauges);
	samples = exposition_parse(text->str, &error);
	g_assert_no_error(error);
	g_assert_cmpfloat(sample(samples, "codechat_sessions{room=\"a\\\\b\\\"c\\nd\"}"), ==, 2);
	g_assert_cmpfloat(sample(samples, "codechat_sessions{room=\"plain\"}"), ==, 1);
	g_assert_cmpfloat(sample(samples, "codechat_build_info{version=\"1.0\\\"x\"}"), ==, 1);
	g_assert_cmpfloat(sample(samples, "codechat_uptime_seconds"), ==, 1.5);
	/* 0.0003 falls in le=0.0005, 0.002 in le=0.0025, 7 only in +Inf */
	g_assert_cmpfloat(sample(samples, "codechat_store_commit_seconds_bucket{le=\"0.00025\"}"),
			  ==,
			  0);
	g_assert_cmpfloat(sample(samples, "codechat_store_commit_seconds_bucket{le=\"0.0005\"}"),
			  ==,
			  1);
	g_assert_cmpfloat(sample(samples, "codechat_store_commit_seconds_bucket{le=\"0.0025\"}"),
			  ==,
			  2);
	g_assert_cmpfloat(sample(samples, "codechat_store_commit_seconds_bucket{le=\"1\"}"), ==, 2);
	g_assert_cmpfloat(sample(samples, "codechat_store_commit_seconds_bucket{le=\"+Inf\"}"),
			  ==,
			  3);
	g_assert_cmpfloat_with_epsilon(sample(samples, "codechat_store_commit_seconds_sum"),
				       7.0023,
				       1e-9);
}

/*
 * What a scrape costs with 500 rooms, and an increment: the handler reads
 * each room's member count, so the number of sessions does not enter
 * (50,000 sessions spread over the rooms give the same text but for the
 * digits)
 */
static void
test_render_cost(void)
{
	g_autoptr(CodechatMetrics) metrics = codechat_metrics_new();
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	g_autofree CodechatMetricsRoom *rooms = g_new0(CodechatMetricsRoom, 500);
	CodechatMetricsGauges gauges = {.connections = 50000, .rooms = 500, .version = "0.1.0"};
	g_autoptr(GHashTable) samples = NULL;
	g_autoptr(GError) error = NULL;
	const guint n_renders = 200;
	const guint64 n_increments = 10000000;
	volatile guint64 sink;
	gint64 start;
	gdouble render_us, increment_ns;
	gsize len = 0;

	for (guint i = 0; i < 500; i++) {
		g_ptr_array_add(names, g_strdup_printf("room-%03u", i));
		rooms[i].name = g_ptr_array_index(names, i);
		rooms[i].sessions = 100;
	}
	gauges.by_room = rooms;
	gauges.n_by_room = 500;
	for (guint i = 0; i < 1000; i++)
		codechat_metrics_observe_commit(metrics, i / 1000.0);

	start = g_get_monotonic_time();
	for (guint i = 0; i < n_renders; i++) {
		GString *text = codechat_metrics_render(metrics, &gauges);
		len = text->len;
		g_string_free(text, TRUE);
	}
	render_us = (gdouble)(g_get_monotonic_time() - start) / n_renders;

	start = g_get_monotonic_time();
	for (guint64 i = 0; i < n_increments; i++) {
		/* what the hot paths do; the volatile pointer keeps the
		 * compiler from folding the loop */
		CodechatMetrics *volatile m = metrics;
		m->frames_out++;
		m->bytes_out += i & 0xff;
	}
	sink = metrics->frames_out + metrics->bytes_out;
	increment_ns = (gdouble)(g_get_monotonic_time() - start) * 1000 / n_increments;
	(void)sink;

	codechat_test_note("render with 500 rooms: %.1f us, %zu bytes; two increments: %.2f ns",
			   render_us,
			   len,
			   increment_ns);
	{
		g_autoptr(GString) text = codechat_metrics_render(metrics, &gauges);
		samples = exposition_parse(text->str, &error);
	}
	g_assert_no_error(error);
	g_assert_cmpfloat(sample(samples, "codechat_sessions{room=\"room-499\"}"), ==, 100);
	g_assert_cmpfloat(sample(samples, "codechat_frames_sent_total"), ==, n_increments);
	/* generous, for sanitizers and valgrind: a scrape is far below a
	 * millisecond on an ordinary build */
	g_assert_cmpfloat(render_us, <, 50000);
}

/* HTTP */

typedef struct {
	gboolean done;
	GBytes *body;  /* (owned) (nullable) */
	GError *error; /* (owned) (nullable) */
} HttpData;

static void
http_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	HttpData *hd = user_data;

	hd->body = soup_session_send_and_read_finish(SOUP_SESSION(source), result, &hd->error);
	hd->done = TRUE;
}

/* returns the message, done, with the body in @body */
static SoupMessage *
http(const gchar *method, const gchar *url, GBytes **body)
{
	g_autoptr(SoupSession) session = soup_session_new_with_options("timeout", 10, NULL);
	g_autoptr(SoupMessage) msg = soup_message_new(method, url);
	HttpData hd = {0};

	g_assert_nonnull(msg);
	soup_session_send_and_read_async(session, msg, G_PRIORITY_DEFAULT, NULL, http_cb, &hd);
	g_assert_true(codechat_test_pump_flag(&hd.done, 10000));
	g_assert_no_error(hd.error);
	*body = hd.body;
	return g_steal_pointer(&msg);
}

typedef struct {
	CodechatTestDaemon *daemon; /* (owned) */
	GPtrArray *clients;	    /* (owned) (element-type CodechatTestWs) */
	gchar *url;		    /* (owned) */
	pid_t pid;
} Fixture;

static void
fixture_setup(Fixture *fx, gconstpointer user_data)
{
	fx->daemon = codechat_test_daemon_start((const gchar *const *)user_data);
	fx->pid = (pid_t)atoi(g_subprocess_get_identifier(fx->daemon->proc));
	daemon_pid = fx->pid;
	fx->clients = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_ws_free);
	fx->url = g_strconcat(fx->daemon->http_base, "/metrics", NULL);
}

static void
fixture_teardown(Fixture *fx, gconstpointer user_data)
{
	g_ptr_array_set_size(fx->clients, 0);
	g_assert_cmpint(codechat_test_daemon_stop(fx->daemon), ==, 0);
	daemon_pid = 0;
	g_clear_pointer(&fx->daemon, codechat_test_daemon_free);
	g_clear_pointer(&fx->clients, g_ptr_array_unref);
	g_free(fx->url);
}

static CodechatTestWs *
fx_client(Fixture *fx, const gchar *nick)
{
	CodechatTestWs *ws = codechat_test_ws_new_client(fx->daemon->uri, nick, NULL);
	g_ptr_array_add(fx->clients, ws);
	return ws;
}

/* a GET that must succeed with the right type and parse strictly */
static GHashTable *
scrape(Fixture *fx)
{
	g_autoptr(GBytes) body = NULL;
	g_autoptr(SoupMessage) msg = http(SOUP_METHOD_GET, fx->url, &body);
	g_autofree gchar *text = NULL;
	g_autoptr(GError) error = NULL;
	GHashTable *samples;
	gsize len;

	g_assert_cmpuint(soup_message_get_status(msg), ==, SOUP_STATUS_OK);
	g_assert_cmpstr(
	    soup_message_headers_get_one(soup_message_get_response_headers(msg), "Content-Type"),
	    ==,
	    CONTENT_TYPE);
	g_assert_nonnull(body);
	len = g_bytes_get_size(body);
	text = g_strndup(g_bytes_get_data(body, NULL), len);
	g_assert_cmpuint(strlen(text), ==, len);
	g_assert_true(g_utf8_validate(text, -1, NULL));
	samples = exposition_parse(text, &error);
	if (samples == NULL)
		g_printerr("%s", text);
	g_assert_no_error(error);
	return samples;
}

static const gchar *const families[][2] = {
    {"codechat_connections", "gauge"},
    {"codechat_sessions", "gauge"},
    {"codechat_rooms", "gauge"},
    {"codechat_uptime_seconds", "gauge"},
    {"codechat_build_info", "gauge"},
    {"codechat_connections_accepted_total", "counter"},
    {"codechat_connections_refused_total", "counter"},
    {"codechat_frames_received_total", "counter"},
    {"codechat_frames_sent_total", "counter"},
    {"codechat_bytes_received_total", "counter"},
    {"codechat_bytes_sent_total", "counter"},
    {"codechat_messages_stored_total", "counter"},
    {"codechat_slow_readers_closed_total", "counter"},
    {"codechat_rate_limited_total", "counter"},
    {"codechat_errors_total", "counter"},
    {"codechat_store_commit_seconds", "histogram"},
};

static const gchar *const error_codes[] = {"bad-json",
					   "bad-request",
					   "not-authenticated",
					   "auth-failed",
					   "bad-nick",
					   "nick-taken",
					   "bad-room",
					   "not-joined",
					   "too-long",
					   "rate-limited",
					   "unknown-nick",
					   "overloaded",
					   "internal"};

static gdouble
errors(GHashTable *samples, const gchar *code)
{
	g_autofree gchar *key = g_strdup_printf("codechat_errors_total{code=\"%s\"}", code);
	return sample(samples, key);
}

static const gchar *const args_default[] = {NULL};

/* a fresh daemon: every family, every error code at 0, the methods */
static void
test_fresh(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GHashTable) samples = scrape(fx);
	g_autoptr(GBytes) body = NULL;
	g_autoptr(GBytes) head_body = NULL;
	g_autoptr(GBytes) post_body = NULL;
	g_autoptr(SoupMessage) get = NULL;
	g_autoptr(SoupMessage) head = NULL;
	g_autoptr(SoupMessage) post = NULL;
	g_autofree gchar *version_key = NULL;
	g_autofree gchar *text = NULL;
	SoupMessageHeaders *headers;

	get = http(SOUP_METHOD_GET, fx->url, &body);
	g_assert_cmpuint(soup_message_get_status(get), ==, SOUP_STATUS_OK);
	text = g_strndup(g_bytes_get_data(body, NULL), g_bytes_get_size(body));
	for (guint i = 0; i < G_N_ELEMENTS(families); i++) {
		g_autofree gchar *type_line =
		    g_strdup_printf("# TYPE %s %s\n", families[i][0], families[i][1]);
		g_assert_nonnull(strstr(text, type_line));
	}
	for (guint i = 0; i < G_N_ELEMENTS(error_codes); i++)
		g_assert_cmpfloat(errors(samples, error_codes[i]), ==, 0);
	g_assert_cmpfloat(sample(samples, "codechat_connections"), ==, 0);
	g_assert_cmpfloat(sample(samples, "codechat_rooms"), ==, 0);
	g_assert_cmpfloat(sample(samples, "codechat_messages_stored_total"), ==, 0);
	g_assert_cmpfloat(sample(samples, "codechat_store_commit_seconds_count"), ==, 0);
	g_assert_cmpfloat(sample(samples, "codechat_uptime_seconds"), >=, 0);
	g_assert_cmpfloat(sample(samples, "codechat_uptime_seconds"), <, 600);
	g_assert_cmpfloat(
	    sample(samples, "codechat_connections_refused_total{reason=\"max-connections\"}"),
	    ==,
	    0);
	g_assert_cmpfloat(
	    sample(samples, "codechat_connections_refused_total{reason=\"per-address\"}"),
	    ==,
	    0);
	version_key = g_strdup_printf("codechat_build_info{version=\"%s\"}", codechat_version());
	g_assert_cmpfloat(sample(samples, version_key), ==, 1);

	/* HEAD: the headers of a GET, no body */
	head = http(SOUP_METHOD_HEAD, fx->url, &head_body);
	g_assert_cmpuint(soup_message_get_status(head), ==, SOUP_STATUS_OK);
	headers = soup_message_get_response_headers(head);
	g_assert_cmpstr(soup_message_headers_get_one(headers, "Content-Type"), ==, CONTENT_TYPE);
	g_assert_cmpuint(g_bytes_get_size(head_body), ==, 0);
	g_assert_cmpuint(g_bytes_get_size(body), >, 0);

	/* anything else: 405 with Allow */
	post = http(SOUP_METHOD_POST, fx->url, &post_body);
	g_assert_cmpuint(soup_message_get_status(post), ==, SOUP_STATUS_METHOD_NOT_ALLOWED);
	g_assert_cmpstr(
	    soup_message_headers_get_one(soup_message_get_response_headers(post), "Allow"),
	    ==,
	    "GET, HEAD");
}

/* N says in a room of M members: the counters move by exactly that */
static void
test_says(Fixture *fx, gconstpointer user_data)
{
	const guint n_says = 7;
	const gchar *nicks[] = {"alice", "bob", "carol"};
	CodechatTestWs *ws[G_N_ELEMENTS(nicks)];
	CodechatTestWs *dave;
	g_autoptr(GHashTable) before = NULL;
	g_autoptr(GHashTable) after = NULL;
	g_autoptr(GHashTable) gone = NULL;
	gint64 deadline;

	for (guint i = 0; i < G_N_ELEMENTS(nicks); i++) {
		ws[i] = fx_client(fx, nicks[i]);
		codechat_test_ws_join(ws[i], "general");
	}
	dave = fx_client(fx, "dave");
	codechat_test_ws_join(dave, "other");
	before = scrape(fx);
	g_assert_cmpfloat(sample(before, "codechat_connections"), ==, 4);
	g_assert_cmpfloat(sample(before, "codechat_connections_accepted_total"), ==, 4);
	g_assert_cmpfloat(sample(before, "codechat_sessions{room=\"general\"}"), ==, 3);
	g_assert_cmpfloat(sample(before, "codechat_sessions{room=\"other\"}"), ==, 1);
	g_assert_cmpfloat(sample(before, "codechat_rooms"), ==, 2);

	for (guint i = 0; i < n_says; i++) {
		g_autoptr(JsonObject) ack = NULL;
		g_autofree gchar *ref = g_strdup_printf("r%u", i);
		/* the last to join: no presence comes before the acks */
		codechat_test_ws_sendf(ws[2],
				       "{\"type\":\"say\",\"room\":\"general\",\"text\":\"m%u\","
				       "\"ref\":\"r%u\"}",
				       i,
				       i);
		ack = codechat_test_ws_expect(ws[2], "message");
		g_assert_cmpstr(codechat_test_json_string(ack, "ref"), ==, ref);
	}
	after = scrape(fx);
	g_assert_cmpfloat(sample(after, "codechat_messages_stored_total") -
			      sample(before, "codechat_messages_stored_total"),
			  ==,
			  n_says);
	/* each commit is acknowledged once dispatched: at least one by now,
	 * at most one per message (group commit) */
	g_assert_cmpfloat(sample(after, "codechat_store_commit_seconds_count"), >, 0);
	g_assert_cmpfloat(sample(after, "codechat_store_commit_seconds_count"), <=, n_says + 4);
	g_assert_cmpfloat(sample(after, "codechat_store_commit_seconds_sum"), >, 0);
	g_assert_cmpfloat(sample(after, "codechat_sessions{room=\"general\"}"), ==, 3);
	for (guint i = 0; i < G_N_ELEMENTS(error_codes); i++)
		g_assert_cmpfloat(errors(after, error_codes[i]), ==, 0);
	/* the transport's counters: one frame in per say, and out one to each
	 * of the three members (the sender's copy is its acknowledgement) */
	g_assert_cmpfloat(sample(after, "codechat_frames_received_total") -
			      sample(before, "codechat_frames_received_total"),
			  ==,
			  n_says);
	g_assert_cmpfloat(sample(after, "codechat_frames_sent_total") -
			      sample(before, "codechat_frames_sent_total"),
			  ==,
			  3 * n_says);
	g_assert_cmpfloat(sample(after, "codechat_bytes_received_total") -
			      sample(before, "codechat_bytes_received_total"),
			  >,
			  n_says *
			      strlen("{\"type\":\"say\",\"room\":\"general\",\"text\":\"m0\"}"));
	g_assert_cmpfloat(sample(after, "codechat_bytes_sent_total") -
			      sample(before, "codechat_bytes_sent_total"),
			  >,
			  3 * n_says * strlen("{\"type\":\"message\"}"));

	/* one leaves: the gauges follow once the daemon has seen it */
	g_ptr_array_remove(fx->clients, ws[0]);
	deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	for (;;) {
		g_clear_pointer(&gone, g_hash_table_unref);
		gone = scrape(fx);
		if (sample(gone, "codechat_connections") == 3 || g_get_monotonic_time() > deadline)
			break;
		g_usleep(20000);
	}
	g_assert_cmpfloat(sample(gone, "codechat_connections"), ==, 3);
	g_assert_cmpfloat(sample(gone, "codechat_sessions{room=\"general\"}"), ==, 2);
	g_assert_cmpfloat(sample(gone, "codechat_connections_accepted_total"), ==, 4);
	/* the room of the last member to leave is still a room: it has
	 * messages; one with neither is not listed */
	g_ptr_array_remove(fx->clients, dave);
	deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	for (;;) {
		g_clear_pointer(&gone, g_hash_table_unref);
		gone = scrape(fx);
		if (sample(gone, "codechat_connections") == 2 || g_get_monotonic_time() > deadline)
			break;
		g_usleep(20000);
	}
	g_assert_cmpfloat(sample(gone, "codechat_rooms"), ==, 1);
	g_assert_false(g_hash_table_contains(gone, "codechat_sessions{room=\"other\"}"));
}

/* errors sent to clients, by code */
static void
test_errors(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	g_autoptr(GHashTable) samples = NULL;
	g_autoptr(JsonObject) err = NULL;

	codechat_test_ws_send_text(alice, "{not json");
	err = codechat_test_ws_expect_error(alice, "bad-json", NULL);
	g_clear_pointer(&err, json_object_unref);
	codechat_test_ws_send_text(alice, "[]");
	err = codechat_test_ws_expect(alice, "error");
	g_clear_pointer(&err, json_object_unref);
	codechat_test_ws_send_text(alice, "{\"type\":\"say\",\"room\":\"nowhere\",\"text\":\"x\"}");
	err = codechat_test_ws_expect_error(alice, "not-joined", NULL);
	samples = scrape(fx);
	g_assert_cmpfloat(errors(samples, "bad-json") + errors(samples, "bad-request"), ==, 2);
	g_assert_cmpfloat(errors(samples, "bad-json"), >=, 1);
	g_assert_cmpfloat(errors(samples, "not-joined"), ==, 1);
	g_assert_cmpfloat(errors(samples, "rate-limited"), ==, 0);
	g_assert_cmpfloat(sample(samples, "codechat_messages_stored_total"), ==, 0);
}

static const gchar *const args_rate[] = {"--rate-limit", "1", "--rate-burst", "2", NULL};

/* a burst past the limit: every refusal is counted, twice over */
static void
test_rate_limited(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	g_autoptr(GHashTable) samples = NULL;
	const guint n = 6;
	guint ok = 0, limited = 0;

	codechat_test_ws_join(alice, "r");
	for (guint i = 0; i < n; i++)
		codechat_test_ws_sendf(
		    alice,
		    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"%u\",\"ref\":\"b%u\"}",
		    i,
		    i);
	for (guint i = 0; i < n; i++) {
		g_autoptr(JsonObject) obj = codechat_test_ws_recv(alice, T);
		g_assert_nonnull(obj);
		if (g_strcmp0(codechat_test_json_string(obj, "type"), "message") == 0) {
			ok++;
		} else {
			g_assert_cmpstr(codechat_test_json_string(obj, "code"), ==, "rate-limited");
			limited++;
		}
	}
	g_assert_cmpuint(limited, >, 0);
	samples = scrape(fx);
	g_assert_cmpfloat(sample(samples, "codechat_rate_limited_total"), ==, limited);
	g_assert_cmpfloat(errors(samples, "rate-limited"), ==, limited);
	g_assert_cmpfloat(sample(samples, "codechat_messages_stored_total"), ==, ok);
}

static const gchar *const args_refuse[] = {"--max-connections",
					   "2",
					   "--max-connections-per-address",
					   "1",
					   NULL};

/* refused sessions, by reason */
static void
test_refused(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(CodechatTestRaw) first =
	    codechat_test_raw_connect_full(fx->daemon->uri, "127.0.0.1", 0);
	g_autoptr(CodechatTestRaw) second = NULL;
	g_autoptr(CodechatTestRaw) third = NULL;
	g_autoptr(CodechatTestRaw) fourth = NULL;
	g_autoptr(JsonObject) obj = NULL;
	g_autoptr(GHashTable) samples = NULL;

	obj = codechat_test_raw_hello(first, "first");
	g_clear_pointer(&obj, json_object_unref);
	/* the same address again: per-address */
	second = codechat_test_raw_connect_full(fx->daemon->uri, "127.0.0.1", 0);
	obj = codechat_test_raw_expect(second, "error");
	g_assert_cmpstr(codechat_test_json_string(obj, "code"), ==, "overloaded");
	g_clear_pointer(&obj, json_object_unref);
	/* another address fills the daemon; a third is one too many */
	third = codechat_test_raw_connect_full(fx->daemon->uri, "127.0.0.2", 0);
	obj = codechat_test_raw_hello(third, "third");
	g_clear_pointer(&obj, json_object_unref);
	fourth = codechat_test_raw_connect_full(fx->daemon->uri, "127.0.0.3", 0);
	obj = codechat_test_raw_expect(fourth, "error");
	g_assert_cmpstr(codechat_test_json_string(obj, "code"), ==, "overloaded");

	samples = scrape(fx);
	g_assert_cmpfloat(
	    sample(samples, "codechat_connections_refused_total{reason=\"per-address\"}"),
	    ==,
	    1);
	g_assert_cmpfloat(
	    sample(samples, "codechat_connections_refused_total{reason=\"max-connections\"}"),
	    ==,
	    1);
	g_assert_cmpfloat(sample(samples, "codechat_connections_accepted_total"), ==, 2);
	g_assert_cmpfloat(errors(samples, "overloaded"), ==, 2);
}

/* a scrape over HTTP with 500 live rooms, timed from the client */
static void
test_many_rooms(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autoptr(GHashTable) samples = NULL;
	const guint n_rooms = 500, n_scrapes = 20;
	gint64 start;

	/* joins without waiting for each reply, then all the replies; bob
	 * joins afterwards (alice's presence events are left unread) */
	for (guint i = 0; i < n_rooms; i++)
		codechat_test_ws_sendf(alice, "{\"type\":\"join\",\"room\":\"room-%03u\"}", i);
	for (guint i = 0; i < n_rooms; i++) {
		g_autoptr(JsonObject) joined = codechat_test_ws_expect(alice, "joined");
		g_assert_nonnull(joined);
	}
	for (guint i = 0; i < n_rooms; i += 2)
		codechat_test_ws_sendf(bob, "{\"type\":\"join\",\"room\":\"room-%03u\"}", i);
	for (guint i = 0; i < n_rooms; i += 2) {
		g_autoptr(JsonObject) joined = codechat_test_ws_expect(bob, "joined");
		g_assert_nonnull(joined);
	}
	start = g_get_monotonic_time();
	for (guint i = 0; i < n_scrapes; i++) {
		g_clear_pointer(&samples, g_hash_table_unref);
		samples = scrape(fx);
	}
	codechat_test_note("GET /metrics with %u rooms: %.2f ms per scrape, parsing included",
			   n_rooms,
			   (gdouble)(g_get_monotonic_time() - start) / 1000 / n_scrapes);
	g_assert_cmpfloat(sample(samples, "codechat_rooms"), ==, n_rooms);
	g_assert_cmpfloat(sample(samples, "codechat_sessions{room=\"room-000\"}"), ==, 2);
	g_assert_cmpfloat(sample(samples, "codechat_sessions{room=\"room-499\"}"), ==, 1);
}

int
main(int argc, char **argv)
{
	signal(SIGABRT, abort_handler);
	signal(SIGPIPE, SIG_IGN);
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/metrics/parser", test_parser);
	g_test_add_func("/metrics/render/escape", test_render_escape);
	g_test_add_func("/metrics/render/cost", test_render_cost);
#define ADD(path, args, func)                                                                      \
	g_test_add("/metrics/" path, Fixture, args, fixture_setup, func, fixture_teardown)
	ADD("daemon/fresh", args_default, test_fresh);
	ADD("daemon/says", args_default, test_says);
	ADD("daemon/errors", args_default, test_errors);
	ADD("daemon/rate-limited", args_rate, test_rate_limited);
	ADD("daemon/refused", args_refuse, test_refused);
	ADD("daemon/many-rooms", args_default, test_many_rooms);

	return g_test_run();
}
