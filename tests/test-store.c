/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codechat-protocol.h"
#include "codechat-store.h"

/*
 * Unit tests of the history stores through the CodechatStore interface:
 * the in-memory store and the durable SQLite store (with both sync modes)
 * must behave alike, so the common cases run against each of them; the
 * SQLite store then also has to keep everything across a close and a
 * reopen, across a crash of the process (SIGKILL), and refuse a damaged
 * database or an unusable data dir with an error that names the path.
 *
 * Every case runs in a subprocess of its own (g_test_trap_subprocess()),
 * so that a failed assertion, a crash or a hang ends that case only.
 */

#define NB	     CODECHAT_STORE_NO_BOUND
#define WAIT_MS	     15000
#define CASE_TIMEOUT (25 * G_USEC_PER_SEC)

/* a crasher is this program again, run with these in its environment */
#define CRASH_DIR_ENV	"CODECHAT_TEST_STORE_CRASH_DIR"
#define CRASH_SYNC_ENV	"CODECHAT_TEST_STORE_CRASH_SYNC"
#define CRASH_RUN_ENV	"CODECHAT_TEST_STORE_CRASH_RUN"
#define CRASH_AFTER_ENV "CODECHAT_TEST_STORE_CRASH_AFTER"
#define CRASH_TOTAL	3000
#define ACKED_NAME	"acked.txt"

typedef struct {
	const gchar *name;
	gboolean sqlite;
	CodechatStoreSync sync;
} Kind;

static const Kind kinds[] = {
    {"memory", FALSE, CODECHAT_STORE_SYNC_FULL},
    {"sqlite", TRUE, CODECHAT_STORE_SYNC_FULL},
    {"sqlite-normal", TRUE, CODECHAT_STORE_SYNC_NORMAL},
};

static const gchar *self_path;

static void
note(const gchar *format, ...) G_GNUC_PRINTF(1, 2);

/* diagnostics: the parent speaks TAP on stdout, a case's subprocess only
 * has its (inherited) stderr */
static void
note(const gchar *format, ...)
{
	g_autofree gchar *text = NULL;
	va_list args;

	va_start(args, format);
	text = g_strdup_vprintf(format, args);
	va_end(args);
	if (g_test_subprocess())
		g_printerr("# %s\n", text);
	else
		g_test_message("%s", text);
}

/* ------------------------------------------------------------------ */
/* pumping the main context with a deadline */

typedef gboolean (*CondFunc)(gconstpointer data);

static gboolean
deadline_cb(gpointer user_data)
{
	gboolean *expired = user_data;
	*expired = TRUE;
	return G_SOURCE_REMOVE;
}

/* iterates the default main context, where the stores call back, until
 * @cond holds or @timeout_ms passed */
static gboolean
pump_until(CondFunc cond, gconstpointer data, guint timeout_ms)
{
	g_autoptr(GSource) source = NULL;
	gboolean expired = FALSE;

	if (cond(data))
		return TRUE;
	source = g_timeout_source_new(timeout_ms);
	g_source_set_callback(source, deadline_cb, &expired, NULL);
	g_source_attach(source, NULL);
	while (!cond(data) && !expired)
		g_main_context_iteration(NULL, TRUE);
	g_source_destroy(source);
	return cond(data);
}

static gboolean
weak_cleared(gconstpointer data)
{
	return *(GObject *const *)data == NULL;
}

/* drops the last reference to a store and waits until it is finalized:
 * it may keep itself alive until its pending callbacks ran, but not
 * longer; with @flush, flushes first (as the daemon does at exit) */
static void
close_store(CodechatStore **store, gboolean flush)
{
	GObject *weak;

	if (*store == NULL)
		return;
	if (flush)
		codechat_store_flush(*store);
	weak = G_OBJECT(*store);
	g_object_add_weak_pointer(weak, (gpointer *)&weak);
	g_clear_object(store);
	if (!pump_until(weak_cleared, &weak, WAIT_MS))
		note("the store was not finalized: a reference is left");
	g_assert_null(weak);
}

/* ------------------------------------------------------------------ */
/* files */

static void
rm_rf(const gchar *path)
{
	g_autoptr(GDir) dir = NULL;
	const gchar *name;

	if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
		dir = g_dir_open(path, 0, NULL);
		while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
			g_autofree gchar *child = g_build_filename(path, name, NULL);
			rm_rf(child);
		}
		g_rmdir(path);
	} else {
		g_unlink(path);
	}
}

static gchar *
make_tmp_dir(void)
{
	g_autoptr(GError) error = NULL;
	gchar *dir = g_dir_make_tmp("codechat-store-XXXXXX", &error);

	g_assert_no_error(error);
	return dir;
}

static gchar *
db_path(const gchar *dir)
{
	return g_build_filename(dir, CODECHAT_STORE_DB_NAME, NULL);
}

static void
write_file(const gchar *path, gconstpointer data, gsize len)
{
	g_autoptr(GError) error = NULL;

	g_file_set_contents(path, data, (gssize)len, &error);
	g_assert_no_error(error);
}

static GBytes *
read_file(const gchar *path)
{
	g_autoptr(GError) error = NULL;
	gchar *data = NULL;
	gsize len = 0;

	g_file_get_contents(path, &data, &len, &error);
	g_assert_no_error(error);
	return g_bytes_new_take(data, len);
}

/* ------------------------------------------------------------------ */
/* messages and appends */

static CodechatMessage *
new_message(const gchar *room, const gchar *to, const gchar *from, const gchar *text)
{
	CodechatMessage *msg = codechat_message_new();

	msg->room = g_strdup(room);
	msg->to = g_strdup(to);
	msg->from = g_strdup(from);
	msg->text = g_strdup(text);
	msg->kind = CODECHAT_KIND_TEXT;
	msg->ts = g_get_real_time();
	return msg;
}

/* the conversation a message goes to, as the hub names it */
static gchar *
conv_of(const CodechatMessage *msg)
{
	if (msg->room != NULL)
		return g_strdup(msg->room);
	return codechat_store_direct_key(msg->from, msg->to);
}

typedef struct {
	CodechatStore *store; /* (unowned) */
	guint appended;
	guint called;
	guint errors;
	gboolean check_visible;	 /* check what queries see in every callback */
	GHashTable *last_called; /* (owned) conv -> guint64* last id called back */
	GPtrArray *msgs;	 /* (owned) (element-type CodechatMessage) in callback order */
} Recorder;

typedef struct {
	Recorder *rec; /* (unowned) */
	guint seq;
	gchar *conv; /* (owned) */
} Pending;

static void
recorder_init(Recorder *rec, CodechatStore *store)
{
	memset(rec, 0, sizeof(*rec));
	rec->store = store;
	rec->last_called = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	rec->msgs = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_message_unref);
}

static void
recorder_clear(Recorder *rec)
{
	g_clear_pointer(&rec->last_called, g_hash_table_unref);
	g_clear_pointer(&rec->msgs, g_ptr_array_unref);
}

static guint64
recorder_last_called(Recorder *rec, const gchar *conv)
{
	guint64 *last = g_hash_table_lookup(rec->last_called, conv);
	return last != NULL ? *last : 0;
}

static void
append_cb(CodechatMessage *msg, const GError *error, gpointer user_data)
{
	Pending *p = user_data;
	Recorder *rec = p->rec;
	guint64 *last;

	if (error != NULL) {
		note("append %u failed: %s", p->seq, error->message);
		rec->errors++;
	}
	g_assert_no_error(error);
	/* in the order of the appends, across all conversations */
	g_assert_cmpuint(p->seq, ==, rec->called);
	g_assert_cmpuint(msg->id, >=, 1);
	last = g_hash_table_lookup(rec->last_called, p->conv);
	g_assert_nonnull(last);
	g_assert_cmpuint(msg->id, ==, *last + 1);
	*last = msg->id;

	if (rec->check_visible) {
		/* committed before the callback: queries see it now; and they
		 * see nothing beyond it yet, or a client that resumes with
		 * join since would get it twice (once replayed, once from the
		 * broadcast that this callback triggers) */
		gboolean more = TRUE;
		g_autoptr(GError) query_error = NULL;
		g_autoptr(GPtrArray) page = NULL;

		g_assert_cmpuint(codechat_store_get_last_id(rec->store, p->conv), ==, msg->id);
		page = codechat_store_query(rec->store,
					    p->conv,
					    msg->id - 1,
					    NB,
					    10,
					    FALSE,
					    &more,
					    &query_error);
		g_assert_no_error(query_error);
		g_assert_nonnull(page);
		g_assert_cmpuint(page->len, ==, 1);
		g_assert_false(more);
		g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(page, 0))->id, ==, msg->id);
		g_assert_cmpstr(((CodechatMessage *)g_ptr_array_index(page, 0))->text,
				==,
				msg->text);
	}
	g_ptr_array_add(rec->msgs, codechat_message_ref(msg));
	rec->called++;
	g_free(p->conv);
	g_free(p);
}

/* appends without waiting; takes @msg */
static void
append(Recorder *rec, CodechatMessage *msg)
{
	Pending *p = g_new0(Pending, 1);

	p->rec = rec;
	p->seq = rec->appended++;
	p->conv = conv_of(msg);
	/* the ids of a conversation go on from where the store stands */
	if (!g_hash_table_contains(rec->last_called, p->conv)) {
		guint64 *last = g_new0(guint64, 1);
		*last = codechat_store_get_last_id(rec->store, p->conv);
		g_hash_table_insert(rec->last_called, g_strdup(p->conv), last);
	}
	codechat_store_append(rec->store, p->conv, msg, append_cb, p);
	codechat_message_unref(msg);
}

static gboolean
recorder_done(gconstpointer data)
{
	const Recorder *rec = data;
	return rec->called == rec->appended;
}

static void
wait_all(Recorder *rec)
{
	if (!pump_until(recorder_done, rec, WAIT_MS))
		note("only %u of %u appends called back", rec->called, rec->appended);
	g_assert_cmpuint(rec->called, ==, rec->appended);
	g_assert_cmpuint(rec->errors, ==, 0);
}

/* appends "<prefix>1".."<prefix>N" to a room as alice and waits */
static void
fill_room(Recorder *rec, const gchar *room, const gchar *prefix, guint n)
{
	for (guint i = 1; i <= n; i++) {
		g_autofree gchar *text = g_strdup_printf("%s%u", prefix, i);
		append(rec, new_message(room, NULL, "alice", text));
	}
	wait_all(rec);
}

/* every message of @conv, oldest first, read in pages of @page_size */
static GPtrArray *
read_all(CodechatStore *store, const gchar *conv, guint page_size)
{
	GPtrArray *all = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_message_unref);
	guint64 after = 0;
	gboolean more = TRUE;

	while (more) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) page =
		    codechat_store_query(store, conv, after, NB, page_size, FALSE, &more, &error);

		g_assert_no_error(error);
		g_assert_nonnull(page);
		g_assert_true(page->len > 0 || !more);
		for (guint i = 0; i < page->len; i++) {
			CodechatMessage *msg = g_ptr_array_index(page, i);
			g_assert_cmpuint(msg->id, >, after);
			after = msg->id;
			g_ptr_array_add(all, codechat_message_ref(msg));
		}
	}
	return all;
}

static void
assert_same_message(const CodechatMessage *got, const CodechatMessage *want)
{
	g_assert_cmpuint(got->id, ==, want->id);
	g_assert_cmpstr(got->room, ==, want->room);
	g_assert_cmpstr(got->to, ==, want->to);
	g_assert_cmpstr(got->from, ==, want->from);
	g_assert_cmpint(got->kind, ==, want->kind);
	g_assert_cmpstr(got->text, ==, want->text);
	/* absent stays absent: an empty string would go on the wire */
	g_assert_cmpstr(got->lang, ==, want->lang);
	g_assert_cmpstr(got->filename, ==, want->filename);
	/* the wire has milliseconds */
	g_assert_cmpint(got->ts / 1000, ==, want->ts / 1000);
}

/* ------------------------------------------------------------------ */
/* the fixture */

typedef struct {
	const Kind *kind;
	gchar *dir; /* (owned) a temporary data dir (sqlite) */
	CodechatStore *store;
	Recorder rec;
} Fixture;

static CodechatStore *
open_store(const Kind *kind, const gchar *dir)
{
	g_autoptr(GError) error = NULL;
	CodechatStore *store;

	if (!kind->sqlite)
		return codechat_store_memory_new();
	store = codechat_store_sqlite_new(dir, kind->sync, &error);
	g_assert_no_error(error);
	g_assert_nonnull(store);
	g_assert_true(CODECHAT_IS_STORE(store));
	return store;
}

static void
fixture_open(Fixture *fx)
{
	fx->store = open_store(fx->kind, fx->dir);
	recorder_init(&fx->rec, fx->store);
}

/* closes and opens the store again on the same data dir */
static void
fixture_reopen(Fixture *fx)
{
	g_assert_true(fx->kind->sqlite);
	wait_all(&fx->rec);
	recorder_clear(&fx->rec);
	close_store(&fx->store, TRUE);
	fixture_open(fx);
}

static void
fixture_setup(Fixture *fx, const Kind *kind)
{
	fx->kind = kind;
	fx->dir = make_tmp_dir();
	fixture_open(fx);
}

static void
fixture_teardown(Fixture *fx)
{
	if (fx->store != NULL) {
		wait_all(&fx->rec);
		close_store(&fx->store, TRUE);
	}
	recorder_clear(&fx->rec);
	rm_rf(fx->dir);
	g_free(fx->dir);
}

/* ------------------------------------------------------------------ */
/* common cases: every store */

static void
test_ids(Fixture *fx)
{
	g_autofree gchar *ab = codechat_store_direct_key("alice", "bob");
	g_autofree gchar *ac = codechat_store_direct_key("alice", "carol");

	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"), ==, 0);
	/* interleaved: each conversation counts on its own from 1 */
	append(&fx->rec, new_message("r", NULL, "alice", "r1"));
	append(&fx->rec, new_message("s", NULL, "alice", "s1"));
	append(&fx->rec, new_message(NULL, "bob", "alice", "ab1"));
	append(&fx->rec, new_message("r", NULL, "bob", "r2"));
	append(&fx->rec, new_message(NULL, "alice", "bob", "ab2"));
	append(&fx->rec, new_message(NULL, "carol", "alice", "ac1"));
	append(&fx->rec, new_message("r", NULL, "carol", "r3"));
	append(&fx->rec, new_message("s", NULL, "alice", "s2"));
	wait_all(&fx->rec);

	{
		const guint64 ids[] = {1, 1, 1, 2, 2, 1, 3, 2};
		g_assert_cmpuint(fx->rec.msgs->len, ==, G_N_ELEMENTS(ids));
		for (guint i = 0; i < G_N_ELEMENTS(ids); i++)
			g_assert_cmpuint(
			    ((CodechatMessage *)g_ptr_array_index(fx->rec.msgs, i))->id,
			    ==,
			    ids[i]);
	}
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"), ==, 3);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "s"), ==, 2);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, ab), ==, 2);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, ac), ==, 1);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "t"), ==, 0);
	/* room names are not folded: another room */
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "R"), ==, 0);
}

static void
test_order(Fixture *fx)
{
	const gchar *rooms[] = {"a", "b", "c"};
	const guint n = 300;

	/* no iteration in between: callbacks in append order is checked by
	 * append_cb(), ids in each conversation consecutive from 1 too */
	for (guint i = 0; i < n; i++) {
		g_autofree gchar *text = g_strdup_printf("m%u", i);
		append(&fx->rec, new_message(rooms[i % 3], NULL, "alice", text));
	}
	wait_all(&fx->rec);
	for (guint i = 0; i < n; i++) {
		CodechatMessage *msg = g_ptr_array_index(fx->rec.msgs, i);
		g_autofree gchar *text = g_strdup_printf("m%u", i);
		g_assert_cmpstr(msg->text, ==, text);
		g_assert_cmpuint(msg->id, ==, i / 3 + 1);
	}
	for (guint r = 0; r < G_N_ELEMENTS(rooms); r++)
		g_assert_cmpuint(codechat_store_get_last_id(fx->store, rooms[r]), ==, n / 3);
}

typedef struct {
	guint64 after;
	guint64 before;
	guint limit;
	gboolean newest;
	guint64 first; /* expected ids first..last; last < first for none */
	guint64 last;
	gboolean more;
} PageCase;

/* a room of 20 messages, ids 1..20 */
static const PageCase page_cases[] = {
    /* the latest page, and the first */
    {0, NB, 5, TRUE, 16, 20, TRUE},
    {0, NB, 5, FALSE, 1, 5, TRUE},
    {0, NB, 1, TRUE, 20, 20, TRUE},
    {0, NB, 1, FALSE, 1, 1, TRUE},
    {0, NB, 19, TRUE, 2, 20, TRUE},
    {0, NB, 19, FALSE, 1, 19, TRUE},
    {0, NB, 20, TRUE, 1, 20, FALSE},
    {0, NB, 20, FALSE, 1, 20, FALSE},
    {0, NB, 21, TRUE, 1, 20, FALSE},
    {0, NB, 500, FALSE, 1, 20, FALSE},
    /* after: exclusive */
    {5, NB, 5, FALSE, 6, 10, TRUE},
    {15, NB, 5, FALSE, 16, 20, FALSE},
    {17, NB, 5, FALSE, 18, 20, FALSE},
    {19, NB, 5, FALSE, 20, 20, FALSE},
    {20, NB, 5, FALSE, 1, 0, FALSE},
    {99, NB, 5, FALSE, 1, 0, FALSE},
    {G_MAXINT64, NB, 5, FALSE, 1, 0, FALSE},
    {5, NB, 5, TRUE, 16, 20, TRUE},
    {15, NB, 5, TRUE, 16, 20, FALSE},
    /* before: exclusive */
    {0, 11, 5, TRUE, 6, 10, TRUE},
    {0, 6, 5, TRUE, 1, 5, FALSE},
    {0, 4, 5, TRUE, 1, 3, FALSE},
    {0, 2, 5, TRUE, 1, 1, FALSE},
    {0, 1, 5, TRUE, 1, 0, FALSE},
    {0, 21, 5, TRUE, 16, 20, TRUE},
    {0, 21, 20, TRUE, 1, 20, FALSE},
    {0, 100, 5, TRUE, 16, 20, TRUE},
    {0, G_MAXINT64, 5, TRUE, 16, 20, TRUE},
    {0, 11, 5, FALSE, 1, 5, TRUE},
    {0, 6, 5, FALSE, 1, 5, FALSE},
    /* both */
    {5, 11, 3, TRUE, 8, 10, TRUE},
    {5, 11, 3, FALSE, 6, 8, TRUE},
    {5, 11, 5, TRUE, 6, 10, FALSE},
    {5, 11, 10, FALSE, 6, 10, FALSE},
    {5, 7, 5, FALSE, 6, 6, FALSE},
    {5, 6, 5, TRUE, 1, 0, FALSE},
    {5, 5, 5, TRUE, 1, 0, FALSE},
    {10, 5, 5, FALSE, 1, 0, FALSE},
    {0, 0, 5, TRUE, 1, 0, FALSE},
};

static void
assert_page(CodechatStore *store, const gchar *conv, const PageCase *pc)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) page = NULL;
	guint n = pc->last >= pc->first ? (guint)(pc->last - pc->first + 1) : 0;
	gboolean more = !pc->more;

	note("query after %" G_GUINT64_FORMAT " before %" G_GUINT64_FORMAT
	     " limit %u %s: want %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT " more %d",
	     pc->after,
	     pc->before,
	     pc->limit,
	     pc->newest ? "newest" : "oldest",
	     pc->first,
	     pc->last,
	     pc->more);
	page = codechat_store_query(store,
				    conv,
				    pc->after,
				    pc->before,
				    pc->limit,
				    pc->newest,
				    &more,
				    &error);
	g_assert_no_error(error);
	g_assert_nonnull(page);
	g_assert_cmpuint(page->len, ==, n);
	for (guint i = 0; i < n; i++) {
		CodechatMessage *msg = g_ptr_array_index(page, i);
		g_autofree gchar *text = g_strdup_printf("m%" G_GUINT64_FORMAT, pc->first + i);
		g_assert_cmpuint(msg->id, ==, pc->first + i);
		g_assert_cmpstr(msg->text, ==, text);
		g_assert_cmpstr(msg->room, ==, conv);
		g_assert_null(msg->to);
		g_assert_cmpstr(msg->from, ==, "alice");
	}
	g_assert_cmpint(more, ==, pc->more);
}

static void
test_paging(Fixture *fx)
{
	/* other conversations around it must not show up */
	fill_room(&fx->rec, "other", "o", 7);
	fill_room(&fx->rec, "r", "m", 20);
	fill_room(&fx->rec, "r2", "x", 3);
	for (guint i = 0; i < G_N_ELEMENTS(page_cases); i++)
		assert_page(fx->store, "r", &page_cases[i]);
}

static void
test_empty(Fixture *fx)
{
	const PageCase none[] = {
	    {0, NB, 50, TRUE, 1, 0, FALSE},
	    {0, NB, 50, FALSE, 1, 0, FALSE},
	    {0, 10, 50, TRUE, 1, 0, FALSE},
	    {10, NB, 50, FALSE, 1, 0, FALSE},
	};
	g_autofree gchar *ab = codechat_store_direct_key("alice", "bob");
	g_autoptr(GPtrArray) rooms = codechat_store_list_rooms(fx->store);

	g_assert_nonnull(codechat_store_get_epoch(fx->store));
	g_assert_cmpstr(codechat_store_get_epoch(fx->store), !=, "");
	g_assert_cmpuint(rooms->len, ==, 0);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "nothing"), ==, 0);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, ab), ==, 0);
	for (guint i = 0; i < G_N_ELEMENTS(none); i++) {
		assert_page(fx->store, "nothing", &none[i]);
		assert_page(fx->store, ab, &none[i]);
	}
	g_assert_false(codechat_store_knows_nick(fx->store, "alice"));
	/* an empty store flushes at once */
	codechat_store_flush(fx->store);
}

static void
test_fields(Fixture *fx)
{
	g_autoptr(CodechatMessage) code = new_message("general", NULL, "alice", NULL);
	g_autoptr(CodechatMessage) action = new_message("general", NULL, "bob", "waves 👋 ünïcödé");
	g_autoptr(CodechatMessage) direct = new_message(NULL, "Bob", "alice", NULL);
	g_autoptr(CodechatMessage) quote = new_message("general", NULL, "carol", NULL);
	g_autofree gchar *ab = codechat_store_direct_key("alice", "Bob");
	g_autoptr(GPtrArray) general = NULL;
	g_autoptr(GPtrArray) dms = NULL;

	code->kind = CODECHAT_KIND_CODE;
	code->lang = g_strdup("c");
	code->filename = g_strdup("main.c");
	code->text = g_strdup("int\nmain(void)\n{\n\treturn 0;\n}\n");
	code->ts = G_GINT64_CONSTANT(1764104400123456);
	action->kind = CODECHAT_KIND_ACTION;
	/* the largest text the protocol allows */
	direct->text = g_strnfill(CODECHAT_MAX_TEXT, 'x');
	memcpy(direct->text, "é", strlen("é"));
	quote->text = g_strdup("'); DROP TABLE messages; -- \"%s\" \\ ?1");
	quote->lang = g_strdup("");

	append(&fx->rec, codechat_message_ref(code));
	append(&fx->rec, codechat_message_ref(action));
	append(&fx->rec, codechat_message_ref(direct));
	append(&fx->rec, codechat_message_ref(quote));
	wait_all(&fx->rec);
	g_assert_cmpuint(code->id, ==, 1);
	g_assert_cmpuint(action->id, ==, 2);
	g_assert_cmpuint(direct->id, ==, 1);
	g_assert_cmpuint(quote->id, ==, 3);

	if (fx->kind->sqlite)
		fixture_reopen(fx);

	general = read_all(fx->store, "general", 10);
	g_assert_cmpuint(general->len, ==, 3);
	assert_same_message(g_ptr_array_index(general, 0), code);
	assert_same_message(g_ptr_array_index(general, 1), action);
	assert_same_message(g_ptr_array_index(general, 2), quote);
	dms = read_all(fx->store, ab, 10);
	g_assert_cmpuint(dms->len, ==, 1);
	assert_same_message(g_ptr_array_index(dms, 0), direct);
}

static void
test_nicks(Fixture *fx)
{
	g_autoptr(GError) error = NULL;

	g_assert_false(codechat_store_knows_nick(fx->store, "alice"));
	g_assert_true(codechat_store_remember_nick(fx->store, "Alice", &error));
	g_assert_no_error(error);
	g_assert_true(codechat_store_remember_nick(fx->store, "alice", &error));
	g_assert_no_error(error);
	g_assert_true(codechat_store_remember_nick(fx->store, "bob-2_x", &error));
	g_assert_no_error(error);
	g_assert_true(codechat_store_knows_nick(fx->store, "alice"));
	g_assert_true(codechat_store_knows_nick(fx->store, "ALICE"));
	g_assert_true(codechat_store_knows_nick(fx->store, "Bob-2_X"));
	g_assert_false(codechat_store_knows_nick(fx->store, "bob"));
	g_assert_false(codechat_store_knows_nick(fx->store, "alic"));

	if (!fx->kind->sqlite)
		return;
	/* remembered across a reopen, with no message in between */
	fixture_reopen(fx);
	g_assert_true(codechat_store_knows_nick(fx->store, "alice"));
	g_assert_true(codechat_store_knows_nick(fx->store, "BOB-2_x"));
	g_assert_false(codechat_store_knows_nick(fx->store, "bob"));
	g_assert_true(codechat_store_remember_nick(fx->store, "carol", &error));
	g_assert_no_error(error);
	fixture_reopen(fx);
	g_assert_true(codechat_store_knows_nick(fx->store, "Carol"));
	g_assert_true(codechat_store_knows_nick(fx->store, "alice"));
}

static gboolean
rooms_contain(GPtrArray *rooms, const gchar *name)
{
	return g_ptr_array_find_with_equal_func(rooms, name, g_str_equal, NULL);
}

static void
assert_rooms(CodechatStore *store)
{
	g_autoptr(GPtrArray) rooms = codechat_store_list_rooms(store);

	for (guint i = 0; i < rooms->len; i++)
		note("room %s", (const gchar *)g_ptr_array_index(rooms, i));
	g_assert_cmpuint(rooms->len, ==, 2);
	g_assert_true(rooms_contain(rooms, "r"));
	g_assert_true(rooms_contain(rooms, "s"));
}

static void
test_list_rooms(Fixture *fx)
{
	g_autoptr(GError) error = NULL;

	/* a nick alone makes no room, a direct message neither */
	g_assert_true(codechat_store_remember_nick(fx->store, "alice", &error));
	append(&fx->rec, new_message(NULL, "bob", "alice", "psst"));
	append(&fx->rec, new_message("r", NULL, "alice", "1"));
	append(&fx->rec, new_message("s", NULL, "alice", "1"));
	append(&fx->rec, new_message("r", NULL, "alice", "2"));
	wait_all(&fx->rec);
	assert_rooms(fx->store);
	if (fx->kind->sqlite) {
		fixture_reopen(fx);
		assert_rooms(fx->store);
	}
}

static void
test_flush(Fixture *fx)
{
	const guint n = 100;

	for (guint i = 0; i < n; i++)
		append(&fx->rec, new_message("r", NULL, "alice", "x"));
	/* no iteration: flush itself waits and runs every callback */
	codechat_store_flush(fx->store);
	g_assert_cmpuint(fx->rec.called, ==, n);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"), ==, n);
	codechat_store_flush(fx->store);
	g_assert_cmpuint(fx->rec.called, ==, n);
	append(&fx->rec, new_message("r", NULL, "alice", "y"));
	codechat_store_flush(fx->store);
	g_assert_cmpuint(fx->rec.called, ==, n + 1);
}

static void
test_visibility(Fixture *fx)
{
	g_autofree gchar *ab = codechat_store_direct_key("alice", "bob");
	const guint n = 200;

	fx->rec.check_visible = TRUE;
	fill_room(&fx->rec, "r", "m", 3);
	for (guint i = 0; i < n; i++) {
		g_autofree gchar *text = g_strdup_printf("v%u", i);
		if (i % 4 == 3)
			append(&fx->rec, new_message(NULL, "bob", "alice", text));
		else
			append(&fx->rec, new_message("r", NULL, "alice", text));
		/* without iterating, what is not called back is not there;
		 * every few appends let some callbacks run */
		g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"),
				 ==,
				 recorder_last_called(&fx->rec, "r"));
		g_assert_cmpuint(codechat_store_get_last_id(fx->store, ab),
				 ==,
				 recorder_last_called(&fx->rec, ab));
		{
			gboolean more = TRUE;
			g_autoptr(GError) error = NULL;
			g_autoptr(GPtrArray) page =
			    codechat_store_query(fx->store, "r", 0, NB, 1, TRUE, &more, &error);
			g_assert_no_error(error);
			g_assert_cmpuint(page->len, ==, 1);
			g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(page, 0))->id,
					 ==,
					 recorder_last_called(&fx->rec, "r"));
		}
		if (i % 10 == 9)
			g_main_context_iteration(NULL, FALSE);
	}
	wait_all(&fx->rec);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"), ==, 3 + n - n / 4);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, ab), ==, n / 4);
}

static void
test_group_commit(Fixture *fx)
{
	const guint n = 1000;
	gint64 start = g_get_monotonic_time();
	g_autoptr(GPtrArray) all = NULL;

	for (guint i = 1; i <= n; i++) {
		g_autofree gchar *text = g_strdup_printf("m%u", i);
		append(&fx->rec, new_message("r", NULL, "alice", text));
	}
	wait_all(&fx->rec);
	note("%u appends called back in %.3f s",
	     n,
	     (gdouble)(g_get_monotonic_time() - start) / G_USEC_PER_SEC);
	for (guint i = 0; i < n; i++)
		g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(fx->rec.msgs, i))->id,
				 ==,
				 i + 1);
	all = read_all(fx->store, "r", 500);
	g_assert_cmpuint(all->len, ==, n);
	for (guint i = 0; i < n; i++) {
		CodechatMessage *msg = g_ptr_array_index(all, i);
		g_autofree gchar *text = g_strdup_printf("m%u", i + 1);
		g_assert_cmpuint(msg->id, ==, i + 1);
		g_assert_cmpstr(msg->text, ==, text);
	}
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"), ==, n);
}

/* ------------------------------------------------------------------ */
/* the SQLite store only */

static void
count_commit(gdouble seconds, gpointer user_data)
{
	(*(guint *)user_data)++;
}

static gboolean
count_at_least_one(gconstpointer data)
{
	return *(const guint *)data >= 1;
}

static gboolean
never(gconstpointer data)
{
	return FALSE;
}

/*
 * Nick records alone wait to be written together (nobody waits for
 * them), across main loop iterations; a message takes them along at once.
 */
static void
test_nick_batch(Fixture *fx)
{
	g_autoptr(GError) error = NULL;
	guint commits = 0;

	codechat_store_sqlite_set_commit_func(CODECHAT_STORE_SQLITE(fx->store),
					      count_commit,
					      &commits,
					      NULL);
	for (guint i = 0; i < 10; i++) {
		g_autofree gchar *nick = g_strdup_printf("nick%u", i);
		g_assert_true(codechat_store_remember_nick(fx->store, nick, &error));
		g_assert_no_error(error);
		/* 5 ms of main loop in between: time enough for the writer
		 * to commit each nick on its own, were it handed over */
		pump_until(never, NULL, 5);
		g_assert_true(codechat_store_knows_nick(fx->store, nick));
	}
	g_assert_true(pump_until(count_at_least_one, &commits, WAIT_MS));
	pump_until(never, NULL, 250);
	/* one, or two if this machine took over 100 ms for the loop */
	g_assert_cmpuint(commits, <=, 2);
	commits = 0;

	/* a nick, then a message: one transaction, without the wait */
	g_assert_true(codechat_store_remember_nick(fx->store, "late", &error));
	append(&fx->rec, new_message("r", NULL, "late", "hi"));
	wait_all(&fx->rec);
	g_assert_cmpuint(commits, ==, 1);

	/* all of them were stored */
	fixture_reopen(fx);
	for (guint i = 0; i < 10; i++) {
		g_autofree gchar *nick = g_strdup_printf("nick%u", i);
		g_assert_true(codechat_store_knows_nick(fx->store, nick));
	}
	g_assert_true(codechat_store_knows_nick(fx->store, "late"));
}

static void
test_reopen(Fixture *fx)
{
	g_autofree gchar *epoch = g_strdup(codechat_store_get_epoch(fx->store));
	g_autofree gchar *ab = codechat_store_direct_key("alice", "bob");
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) before = NULL;
	g_autoptr(GPtrArray) after = NULL;

	g_assert_nonnull(epoch);
	g_assert_cmpuint(strlen(epoch), >, 0);
	g_assert_true(codechat_store_remember_nick(fx->store, "alice", &error));
	g_assert_true(codechat_store_remember_nick(fx->store, "bob", &error));
	fill_room(&fx->rec, "r", "m", 30);
	append(&fx->rec, new_message(NULL, "bob", "alice", "d1"));
	append(&fx->rec, new_message(NULL, "alice", "bob", "d2"));
	wait_all(&fx->rec);
	before = read_all(fx->store, "r", 7);

	fixture_reopen(fx);
	g_assert_cmpstr(codechat_store_get_epoch(fx->store), ==, epoch);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"), ==, 30);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, ab), ==, 2);
	g_assert_true(codechat_store_knows_nick(fx->store, "bob"));
	after = read_all(fx->store, "r", 7);
	g_assert_cmpuint(after->len, ==, before->len);
	for (guint i = 0; i < after->len; i++)
		assert_same_message(g_ptr_array_index(after, i), g_ptr_array_index(before, i));
	/* ids go on where they stopped, never reused */
	append(&fx->rec, new_message("r", NULL, "alice", "m31"));
	append(&fx->rec, new_message(NULL, "bob", "alice", "d3"));
	append(&fx->rec, new_message("new", NULL, "alice", "n1"));
	wait_all(&fx->rec);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(fx->rec.msgs, 0))->id, ==, 31);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(fx->rec.msgs, 1))->id, ==, 3);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(fx->rec.msgs, 2))->id, ==, 1);

	/* and again, with the other sync mode: the same database */
	wait_all(&fx->rec);
	recorder_clear(&fx->rec);
	close_store(&fx->store, TRUE);
	{
		Kind other = *fx->kind;
		other.sync = fx->kind->sync == CODECHAT_STORE_SYNC_FULL ? CODECHAT_STORE_SYNC_NORMAL
									: CODECHAT_STORE_SYNC_FULL;
		fx->store = open_store(&other, fx->dir);
		recorder_init(&fx->rec, fx->store);
	}
	g_assert_cmpstr(codechat_store_get_epoch(fx->store), ==, epoch);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"), ==, 31);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, ab), ==, 3);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "new"), ==, 1);
}

/* --history-max: the last N of each conversation stay, across a reopen */
static void
test_history_max(Fixture *fx)
{
	g_autoptr(GPtrArray) r = NULL;
	g_autoptr(GPtrArray) s = NULL;

	codechat_store_sqlite_set_history_max(CODECHAT_STORE_SQLITE(fx->store), 5);
	fill_room(&fx->rec, "r", "m", 12);
	fill_room(&fx->rec, "s", "m", 3);
	r = read_all(fx->store, "r", 3);
	g_assert_cmpuint(r->len, ==, 5);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(r, 0))->id, ==, 8);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(r, 4))->id, ==, 12);
	s = read_all(fx->store, "s", 3);
	g_assert_cmpuint(s->len, ==, 3);
	g_clear_pointer(&r, g_ptr_array_unref);

	/* ids go on after a reopen, from the last one kept */
	fixture_reopen(fx);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"), ==, 12);
	fill_room(&fx->rec, "r", "n", 1);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(fx->rec.msgs, 0))->id, ==, 13);
	/* unlimited again: nothing more goes */
	r = read_all(fx->store, "r", 100);
	g_assert_cmpuint(r->len, ==, 6);
}

static void
test_reopen_paging(Fixture *fx)
{
	/* the same paging answers from a database read at start */
	fill_room(&fx->rec, "other", "o", 7);
	fill_room(&fx->rec, "r", "m", 20);
	fixture_reopen(fx);
	for (guint i = 0; i < G_N_ELEMENTS(page_cases); i++)
		assert_page(fx->store, "r", &page_cases[i]);
}

static void
test_epoch(Fixture *fx)
{
	g_autofree gchar *dir2 = make_tmp_dir();
	CodechatStore *other = open_store(fx->kind, dir2);
	const gchar *epoch = codechat_store_get_epoch(fx->store);

	/* made when the database is created: another database, another epoch */
	g_assert_nonnull(epoch);
	g_assert_cmpuint(strlen(epoch), >, 0);
	g_assert_cmpstr(codechat_store_get_epoch(other), !=, epoch);
	g_assert_cmpstr(codechat_store_get_epoch(fx->store), ==, epoch);
	close_store(&other, TRUE);
	rm_rf(dir2);
}

static void
assert_pragmas(const gchar *dir)
{
	g_autofree gchar *path = db_path(dir);
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	gint64 version;
	g_autofree gchar *journal = NULL;

	g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
	g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
	g_assert_cmpint(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL),
			==,
			SQLITE_OK);
	g_assert_cmpint(sqlite3_step(stmt), ==, SQLITE_ROW);
	version = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	g_assert_cmpint(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL),
			==,
			SQLITE_OK);
	g_assert_cmpint(sqlite3_step(stmt), ==, SQLITE_ROW);
	journal = g_strdup((const gchar *)sqlite3_column_text(stmt, 0));
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	note("user_version %" G_GINT64_FORMAT ", journal_mode %s", version, journal);
	g_assert_cmpint(version, >=, 1);
	g_assert_cmpstr(journal, ==, "wal");
}

static void
test_schema(Fixture *fx)
{
	fill_room(&fx->rec, "r", "m", 3);
	/* while open, and after the close */
	assert_pragmas(fx->dir);
	fixture_reopen(fx);
	close_store(&fx->store, TRUE);
	assert_pragmas(fx->dir);
}

static void
test_mkdir(Fixture *fx)
{
	g_autofree gchar *dir = g_build_filename(fx->dir, "new", "deeper", NULL);
	g_autofree gchar *path = db_path(dir);
	CodechatStore *store = open_store(fx->kind, dir);
	GStatBuf st;

	g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
	g_assert_cmpint(g_stat(dir, &st), ==, 0);
	note("data dir mode %o", (guint)(st.st_mode & 07777));
	g_assert_cmpuint(st.st_mode & 0777, ==, 0700);
	close_store(&store, TRUE);
}

/* opening must fail with an error that names the path, and leave what
 * was there as it was: a store must never "repair" history away */
static void
assert_open_fails(const Kind *kind, const gchar *dir, const gchar *damaged)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) before = NULL;
	CodechatStore *store;

	if (damaged != NULL && g_file_test(damaged, G_FILE_TEST_IS_REGULAR))
		before = read_file(damaged);
	store = codechat_store_sqlite_new(dir, kind->sync, &error);
	if (store != NULL)
		note("opened %s, which must fail", dir);
	g_assert_null(store);
	g_assert_nonnull(error);
	note("error: %s", error->message);
	g_assert_nonnull(strstr(error->message, dir));
	if (before != NULL) {
		g_autoptr(GBytes) after = read_file(damaged);
		g_assert_true(g_bytes_equal(before, after));
	}
	g_clear_object(&store);
}

static void
test_corrupt_garbage(Fixture *fx)
{
	g_autofree gchar *dir = g_build_filename(fx->dir, "garbage", NULL);
	g_autofree gchar *path = db_path(dir);
	guint8 junk[4096];

	memset(junk, 0xaa, sizeof(junk));
	g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
	write_file(path, junk, sizeof(junk));
	assert_open_fails(fx->kind, dir, path);
	/* also a second time: the failed open changed nothing */
	assert_open_fails(fx->kind, dir, path);
}

/* a real database of this store, closed, to damage */
static gchar *
make_closed_db(Fixture *fx)
{
	fill_room(&fx->rec, "r", "m", 50);
	close_store(&fx->store, TRUE);
	return db_path(fx->dir);
}

static void
test_corrupt_header(Fixture *fx)
{
	g_autofree gchar *path = make_closed_db(fx);
	g_autoptr(GBytes) good = read_file(path);
	g_autofree guint8 *bad = g_memdup2(g_bytes_get_data(good, NULL), g_bytes_get_size(good));

	g_assert_cmpuint(g_bytes_get_size(good), >, 100);
	/* the magic string, then the whole header */
	memcpy(bad, "NotSQLite fmt 3", 16);
	write_file(path, bad, g_bytes_get_size(good));
	assert_open_fails(fx->kind, fx->dir, path);
	memset(bad, 0xaa, 100);
	write_file(path, bad, g_bytes_get_size(good));
	assert_open_fails(fx->kind, fx->dir, path);
}

static void
test_corrupt_truncated(Fixture *fx)
{
	g_autofree gchar *path = make_closed_db(fx);
	g_autoptr(GBytes) good = read_file(path);

	/* cut in the middle of the header */
	write_file(path, g_bytes_get_data(good, NULL), 50);
	assert_open_fails(fx->kind, fx->dir, path);
}

static void
test_newer_schema(Fixture *fx)
{
	/* a database from a newer codechatd: refused, not "migrated" down */
	g_autofree gchar *path = make_closed_db(fx);
	sqlite3 *db = NULL;

	g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
	g_assert_cmpint(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL),
			==,
			SQLITE_OK);
	sqlite3_close(db);
	assert_open_fails(fx->kind, fx->dir, path);
}

static void
test_unusable_db_is_dir(Fixture *fx)
{
	g_autofree gchar *dir = g_build_filename(fx->dir, "sub", NULL);
	g_autofree gchar *path = db_path(dir);

	g_assert_cmpint(g_mkdir_with_parents(path, 0700), ==, 0);
	assert_open_fails(fx->kind, dir, NULL);
	g_assert_true(g_file_test(path, G_FILE_TEST_IS_DIR));
}

static void
test_unusable_parent_is_file(Fixture *fx)
{
	/* fails for root too: nothing can be created under a regular file */
	g_autofree gchar *file = g_build_filename(fx->dir, "file", NULL);
	g_autofree gchar *dir = g_build_filename(file, "data", NULL);

	write_file(file, "x", 1);
	assert_open_fails(fx->kind, dir, NULL);
	g_assert_true(g_file_test(file, G_FILE_TEST_IS_REGULAR));
}

static void
test_unusable_dir_is_file(Fixture *fx)
{
	g_autofree gchar *file = g_build_filename(fx->dir, "file", NULL);

	write_file(file, "not a directory", 15);
	assert_open_fails(fx->kind, file, file);
}

static void
test_unref_pending(Fixture *fx)
{
	const guint n = 50;
	g_autoptr(GPtrArray) all = NULL;

	fill_room(&fx->rec, "r", "m", 5);
	for (guint i = 6; i <= n; i++) {
		g_autofree gchar *text = g_strdup_printf("m%u", i);
		append(&fx->rec, new_message("r", NULL, "alice", text));
	}
	/* the last reference goes with appends still pending: their
	 * callbacks still run (each one owns what its caller gave it) and
	 * what they acknowledged is kept */
	close_store(&fx->store, FALSE);
	if (!pump_until(recorder_done, &fx->rec, WAIT_MS))
		note("only %u of %u appends called back", fx->rec.called, fx->rec.appended);
	g_assert_cmpuint(fx->rec.called, ==, n);
	g_assert_cmpuint(fx->rec.errors, ==, 0);
	recorder_clear(&fx->rec);

	fixture_open(fx);
	all = read_all(fx->store, "r", 500);
	g_assert_cmpuint(all->len, ==, n);
	g_assert_cmpuint(codechat_store_get_last_id(fx->store, "r"), ==, n);
}

/* ------------------------------------------------------------------ */
/* a crash of the process: SIGKILL with appends in flight */

static gint crash_fd = -1;
static guint crash_acked;
static guint crash_after;

static void
crash_cb(CodechatMessage *msg, const GError *error, gpointer user_data)
{
	g_autofree gchar *conv = conv_of(msg);
	g_autofree gchar *line = NULL;
	gsize len;

	if (error != NULL) {
		g_printerr("crasher: append failed: %s\n", error->message);
		_exit(3);
	}
	/* the kernel keeps what write() took when the process dies */
	line = g_strdup_printf("%s\t%" G_GUINT64_FORMAT "\t%s\n", conv, msg->id, msg->text);
	len = strlen(line);
	if (write(crash_fd, line, len) != (gssize)len)
		_exit(4);
	if (++crash_acked == crash_after)
		raise(SIGKILL);
}

/* main() of the crasher: appends CRASH_TOTAL messages, interleaving
 * iterations so that transactions are in flight all the time, and dies
 * of SIGKILL at its CRASH_AFTER'th acknowledgement */
static int
crasher_main(void)
{
	const gchar *dir = g_getenv(CRASH_DIR_ENV);
	const gchar *run = g_getenv(CRASH_RUN_ENV);
	CodechatStoreSync sync = g_strcmp0(g_getenv(CRASH_SYNC_ENV), "normal") == 0
				     ? CODECHAT_STORE_SYNC_NORMAL
				     : CODECHAT_STORE_SYNC_FULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *acked = g_build_filename(dir, ACKED_NAME, NULL);
	g_autofree gchar *nick = g_strdup_printf("nick%s", run);
	CodechatStore *store;

	crash_after = (guint)g_ascii_strtoull(g_getenv(CRASH_AFTER_ENV), NULL, 10);
	crash_fd = open(acked, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (crash_fd < 0)
		return 2;
	store = codechat_store_sqlite_new(dir, sync, &error);
	if (store == NULL) {
		g_printerr("crasher: %s\n", error->message);
		return 2;
	}
	/* remembered before any message of this run */
	if (!codechat_store_remember_nick(store, nick, &error))
		return 2;
	for (guint i = 0; i < CRASH_TOTAL; i++) {
		CodechatMessage *msg;
		g_autofree gchar *conv = NULL;

		if (i % 4 == 3)
			msg = new_message(NULL, "bob", nick, NULL);
		else
			msg = new_message(i % 4 == 0 ? "a" : "b", NULL, nick, NULL);
		msg->text = g_strdup_printf("run%s-%u", run, i);
		conv = conv_of(msg);
		codechat_store_append(store, conv, msg, crash_cb, NULL);
		codechat_message_unref(msg);
		if (i % 16 == 15)
			g_main_context_iteration(NULL, FALSE);
	}
	while (TRUE)
		g_main_context_iteration(NULL, TRUE);
	return 0;
}

/* one acknowledged message, as the crasher wrote it down */
typedef struct {
	gchar *conv;
	guint64 id;
	gchar *text;
} Acked;

static void
acked_free(Acked *a)
{
	g_free(a->conv);
	g_free(a->text);
	g_free(a);
}

static GPtrArray *
read_acked(const gchar *dir)
{
	g_autofree gchar *path = g_build_filename(dir, ACKED_NAME, NULL);
	g_autofree gchar *contents = NULL;
	g_auto(GStrv) lines = NULL;
	GPtrArray *acked = g_ptr_array_new_with_free_func((GDestroyNotify)acked_free);

	if (!g_file_get_contents(path, &contents, NULL, NULL))
		return acked;
	lines = g_strsplit(contents, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		g_auto(GStrv) fields = NULL;
		Acked *a;

		if (lines[i][0] == '\0')
			continue;
		fields = g_strsplit(lines[i], "\t", 3);
		g_assert_cmpuint(g_strv_length(fields), ==, 3);
		a = g_new0(Acked, 1);
		a->conv = g_strdup(fields[0]);
		a->id = g_ascii_strtoull(fields[1], NULL, 10);
		a->text = g_strdup(fields[2]);
		g_ptr_array_add(acked, a);
	}
	return acked;
}

static void
run_crasher(const Kind *kind, const gchar *dir, guint run, guint after)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *run_str = g_strdup_printf("%u", run);
	g_autofree gchar *after_str = g_strdup_printf("%u", after);

	g_subprocess_launcher_setenv(launcher, CRASH_DIR_ENV, dir, TRUE);
	g_subprocess_launcher_setenv(launcher, CRASH_RUN_ENV, run_str, TRUE);
	g_subprocess_launcher_setenv(launcher, CRASH_AFTER_ENV, after_str, TRUE);
	g_subprocess_launcher_setenv(launcher,
				     CRASH_SYNC_ENV,
				     kind->sync == CODECHAT_STORE_SYNC_NORMAL ? "normal" : "full",
				     TRUE);
	proc = g_subprocess_launcher_spawn(launcher, &error, self_path, NULL);
	g_assert_no_error(error);
	/* bounded by the case's own timeout */
	g_subprocess_wait(proc, NULL, &error);
	g_assert_no_error(error);
	if (g_subprocess_get_if_exited(proc))
		note("the crasher exited with %d", g_subprocess_get_exit_status(proc));
	g_assert_true(g_subprocess_get_if_signaled(proc));
	g_assert_cmpint(g_subprocess_get_term_sig(proc), ==, SIGKILL);
}

static void
check_after_crash(const Kind *kind, const gchar *dir, guint runs)
{
	CodechatStore *store = open_store(kind, dir);
	g_autoptr(GPtrArray) acked = read_acked(dir);
	g_autoptr(GHashTable) stored = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GPtrArray) keep =
	    g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
	g_autoptr(GPtrArray) convs = g_ptr_array_new_with_free_func(g_free);
	guint total = 0;

	g_ptr_array_add(convs, g_strdup("a"));
	g_ptr_array_add(convs, g_strdup("b"));
	/* one direct conversation per run: nickN with bob */
	for (guint r = 1; r <= runs; r++) {
		g_autofree gchar *nick = g_strdup_printf("nick%u", r);
		g_ptr_array_add(convs, codechat_store_direct_key("bob", nick));
	}
	for (guint c = 0; c < convs->len; c++) {
		const gchar *conv = g_ptr_array_index(convs, c);
		GPtrArray *all = read_all(store, conv, 500);

		g_ptr_array_add(keep, all);
		/* contiguous from 1, as transactions commit in order; each
		 * text once */
		for (guint i = 0; i < all->len; i++) {
			CodechatMessage *msg = g_ptr_array_index(all, i);
			g_assert_cmpuint(msg->id, ==, i + 1);
			g_assert_false(g_hash_table_contains(stored, msg->text));
			g_hash_table_insert(stored, msg->text, msg);
		}
		g_assert_cmpuint(codechat_store_get_last_id(store, conv), ==, all->len);
		total += all->len;
	}
	note("after run %u: %u acknowledged, %u stored", runs, acked->len, total);
	g_assert_cmpuint(total, >=, acked->len);
	for (guint i = 0; i < acked->len; i++) {
		Acked *a = g_ptr_array_index(acked, i);
		CodechatMessage *msg = g_hash_table_lookup(stored, a->text);
		if (msg == NULL)
			note("acknowledged %s id %" G_GUINT64_FORMAT " (%s) was lost",
			     a->conv,
			     a->id,
			     a->text);
		g_assert_nonnull(msg);
		g_assert_cmpuint(msg->id, ==, a->id);
		{
			g_autofree gchar *conv = conv_of(msg);
			g_assert_cmpstr(conv, ==, a->conv);
		}
	}
	/* a nick remembered before acknowledged messages is kept with them */
	for (guint r = 1; r <= runs; r++) {
		g_autofree gchar *nick = g_strdup_printf("nick%u", r);
		g_assert_true(codechat_store_knows_nick(store, nick));
	}
	close_store(&store, TRUE);
}

static void
test_crash(Fixture *fx)
{
	/* three crashes on the same database, at different points: right
	 * at the first acknowledgement, early, and late */
	const guint points[] = {1, 300, 1700};

	/* the crashers open the database themselves */
	close_store(&fx->store, TRUE);
	for (guint r = 0; r < G_N_ELEMENTS(points); r++) {
		run_crasher(fx->kind, fx->dir, r + 1, points[r]);
		check_after_crash(fx->kind, fx->dir, r + 1);
	}
}

/* ------------------------------------------------------------------ */
/* not a store at all */

static void
test_direct_key(void)
{
	g_autofree gchar *ab = codechat_store_direct_key("alice", "bob");
	g_autofree gchar *ba = codechat_store_direct_key("bob", "alice");
	g_autofree gchar *ab_case = codechat_store_direct_key("ALICE", "Bob");
	g_autofree gchar *ac = codechat_store_direct_key("alice", "carol");
	g_autofree gchar *aa = codechat_store_direct_key("alice", "Alice");

	g_assert_cmpstr(ab, ==, ba);
	g_assert_cmpstr(ab, ==, ab_case);
	g_assert_cmpstr(ab, !=, ac);
	/* apart from every room name: ':' is not allowed in one */
	g_assert_false(codechat_validate_room(ab, NULL));
	g_assert_false(codechat_validate_room(aa, NULL));
	/* "a" + "bc" is not "ab" + "c" */
	{
		g_autofree gchar *x = codechat_store_direct_key("a", "bc");
		g_autofree gchar *y = codechat_store_direct_key("ab", "c");
		g_assert_cmpstr(x, !=, y);
	}
}

/* ------------------------------------------------------------------ */

typedef void (*CaseFunc)(Fixture *fx);

typedef struct {
	const Kind *kind;
	CaseFunc func;
} Case;

static void
run_case(gconstpointer data)
{
	const Case *c = data;
	Fixture fx = {0};

	if (!g_test_subprocess()) {
		/* the case runs in a child: a failure, a crash or a hang
		 * ends that case and no other */
		g_test_trap_subprocess(NULL, CASE_TIMEOUT, G_TEST_SUBPROCESS_INHERIT_STDERR);
		g_test_trap_assert_passed();
		return;
	}
	fixture_setup(&fx, c->kind);
	c->func(&fx);
	fixture_teardown(&fx);
}

static void
add(const Kind *kind, const gchar *name, CaseFunc func)
{
	g_autofree gchar *path = g_strdup_printf("/codechat/store/%s/%s", kind->name, name);
	Case *c = g_new0(Case, 1);

	c->kind = kind;
	c->func = func;
	g_test_add_data_func_full(path, c, run_case, g_free);
}

int
main(int argc, char **argv)
{
	self_path = argv[0];
	if (g_getenv(CRASH_DIR_ENV) != NULL)
		return crasher_main();

	g_test_init(&argc, &argv, NULL);
	/* the parent only collects the verdicts of the children */
	if (!g_test_subprocess())
		g_test_set_nonfatal_assertions();

	g_test_add_func("/codechat/store/direct-key", test_direct_key);
	for (guint k = 0; k < G_N_ELEMENTS(kinds); k++) {
		const Kind *kind = &kinds[k];

		add(kind, "ids", test_ids);
		add(kind, "order", test_order);
		add(kind, "paging", test_paging);
		add(kind, "empty", test_empty);
		add(kind, "fields", test_fields);
		add(kind, "nicks", test_nicks);
		add(kind, "list-rooms", test_list_rooms);
		add(kind, "flush", test_flush);
		add(kind, "visibility", test_visibility);
		add(kind, "group-commit", test_group_commit);
		if (!kind->sqlite)
			continue;
		add(kind, "reopen", test_reopen);
		add(kind, "nick-batch", test_nick_batch);
		add(kind, "reopen-paging", test_reopen_paging);
		add(kind, "history-max", test_history_max);
		add(kind, "epoch", test_epoch);
		add(kind, "schema", test_schema);
		add(kind, "mkdir", test_mkdir);
		add(kind, "corrupt/garbage", test_corrupt_garbage);
		add(kind, "corrupt/header", test_corrupt_header);
		add(kind, "corrupt/truncated", test_corrupt_truncated);
		add(kind, "unusable/newer-schema", test_newer_schema);
		add(kind, "unusable/db-is-dir", test_unusable_db_is_dir);
		add(kind, "unusable/parent-is-file", test_unusable_parent_is_file);
		add(kind, "unusable/dir-is-file", test_unusable_dir_is_file);
		add(kind, "unref-pending", test_unref_pending);
		add(kind, "crash", test_crash);
	}
	return g_test_run();
}
