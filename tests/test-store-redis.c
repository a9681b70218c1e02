/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <hiredis/hiredis.h>
#include <string.h>

#include "codechat-protocol.h"
#include "codechat-store-redis.h"
#include "codechat-test-client.h"
#include "codechat-test-daemon.h"
#include "codechat-test-redis.h"

/*
 * The Redis store against a real redis-server of its own per case: ids,
 * paging with the SQLite store's semantics, two stores on one Redis (two
 * daemons) agreeing on ids, order and nicks, trimming, and losing and
 * getting back Redis.
 */

#define NB	CODECHAT_STORE_NO_BOUND
#define WAIT_MS 10000

typedef struct {
	CodechatTestRedis *redis; /* (owned) (nullable) NULL: skipped */
} Fixture;

static void
fixture_set_up(Fixture *fixture, gconstpointer data)
{
	fixture->redis = codechat_test_redis_start();
}

static void
fixture_tear_down(Fixture *fixture, gconstpointer data)
{
	g_clear_pointer(&fixture->redis, codechat_test_redis_free);
}

/* pumping */

typedef gboolean (*CondFunc)(gconstpointer data);

static gboolean
deadline_cb(gpointer user_data)
{
	*(gboolean *)user_data = TRUE;
	return G_SOURCE_REMOVE;
}

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

static void
pump_for(guint ms)
{
	gboolean expired = FALSE;
	guint id = g_timeout_add(ms, deadline_cb, &expired);

	while (!expired)
		g_main_context_iteration(NULL, TRUE);
	(void)id;
}

static gboolean
is_connected(gconstpointer data)
{
	return codechat_store_redis_is_connected(CODECHAT_STORE_REDIS((gpointer)data));
}

/* what one store saw, in the order it saw it */

typedef struct {
	CodechatStore *store; /* (owned) */
	GArray *seen;	      /* (owned) guint64, "conv" ids, own and remote */
	GArray *own;	      /* (owned) guint64 */
	GArray *remote;	      /* (owned) guint64 */
	gchar *conv;	      /* (owned) (nullable) only this conversation */
	guint n_failed;
	guint n_answered;
	GError *last_error; /* (owned) (nullable) */
} View;

static void
remote_cb(CodechatStore *store, const gchar *conv, CodechatMessage *msg, gpointer user_data)
{
	View *view = user_data;

	g_assert_nonnull(msg);
	g_assert_cmpuint(msg->id, >, 0);
	if (view->conv != NULL && g_strcmp0(conv, view->conv) != 0)
		return;
	g_array_append_val(view->seen, msg->id);
	g_array_append_val(view->remote, msg->id);
}

static View *
view_new(const gchar *url, guint history_max, const gchar *conv)
{
	g_autoptr(GError) error = NULL;
	View *view = g_new0(View, 1);

	view->store = codechat_store_redis_new(url, history_max, &error);
	g_assert_no_error(error);
	g_assert_nonnull(view->store);
	view->seen = g_array_new(FALSE, FALSE, sizeof(guint64));
	view->own = g_array_new(FALSE, FALSE, sizeof(guint64));
	view->remote = g_array_new(FALSE, FALSE, sizeof(guint64));
	view->conv = g_strdup(conv);
	g_signal_connect(view->store, "remote-message", G_CALLBACK(remote_cb), view);
	g_assert_true(pump_until(is_connected, view->store, WAIT_MS));
	return view;
}

static void
view_free(View *view)
{
	if (view == NULL)
		return;
	g_signal_handlers_disconnect_by_data(view->store, view);
	g_clear_object(&view->store);
	g_array_unref(view->seen);
	g_array_unref(view->own);
	g_array_unref(view->remote);
	g_clear_error(&view->last_error);
	g_free(view->conv);
	g_free(view);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(View, view_free)

static void
append_cb(CodechatMessage *msg, const GError *error, gpointer user_data)
{
	View *view = user_data;

	view->n_answered++;
	if (error != NULL) {
		view->n_failed++;
		g_clear_error(&view->last_error);
		view->last_error = g_error_copy(error);
		return;
	}
	g_assert_cmpuint(msg->id, >, 0);
	g_array_append_val(view->seen, msg->id);
	g_array_append_val(view->own, msg->id);
}

static CodechatMessage *
make_message(const gchar *conv, const gchar *text)
{
	CodechatMessage *msg = codechat_message_new();

	if (g_str_has_prefix(conv, "dm:")) {
		msg->to = g_strdup("bob");
	} else {
		msg->room = g_strdup(conv);
	}
	msg->from = g_strdup("alice");
	msg->text = g_strdup(text);
	msg->ts = g_get_real_time();
	msg->kind = CODECHAT_KIND_TEXT;
	return msg;
}

static void
append(View *view, const gchar *conv, const gchar *text)
{
	g_autoptr(CodechatMessage) msg = make_message(conv, text);

	codechat_store_append(view->store, conv, msg, append_cb, view);
}

typedef struct {
	View *view;
	guint n;
} Count;

static gboolean
answered(gconstpointer data)
{
	const Count *count = data;
	return count->view->n_answered >= count->n;
}

static gboolean
seen(gconstpointer data)
{
	const Count *count = data;
	return count->view->seen->len >= count->n;
}

static void
wait_answered(View *view, guint n)
{
	Count count = {view, n};
	g_assert_true(pump_until(answered, &count, WAIT_MS));
}

static void
wait_seen(View *view, guint n)
{
	Count count = {view, n};
	g_assert_true(pump_until(seen, &count, WAIT_MS));
}

static void
assert_ids(GArray *ids, guint64 first, guint64 last)
{
	g_assert_cmpuint(ids->len, ==, last - first + 1);
	for (guint i = 0; i < ids->len; i++)
		g_assert_cmpuint(g_array_index(ids, guint64, i), ==, first + i);
}

/* querying, synchronously for the tests */

typedef struct {
	gboolean done;
	GPtrArray *page; /* (owned) (nullable) */
	gboolean more;
	GError *error; /* (owned) (nullable) */
} QueryResult;

static void
query_cb(GPtrArray *messages, gboolean more, const GError *error, gpointer user_data)
{
	QueryResult *result = user_data;

	result->done = TRUE;
	result->more = more;
	if (messages != NULL)
		result->page = g_ptr_array_ref(messages);
	if (error != NULL)
		result->error = g_error_copy(error);
	/* no page and no error is a bug */
	g_assert_true((messages == NULL) != (error == NULL));
}

static gboolean
query_done(gconstpointer data)
{
	return ((const QueryResult *)data)->done;
}

static void
query(CodechatStore *store,
      const gchar *conv,
      guint64 after,
      guint64 before,
      guint limit,
      gboolean newest,
      QueryResult *result)
{
	memset(result, 0, sizeof(*result));
	codechat_store_query_async(store, conv, after, before, limit, newest, query_cb, result);
	g_assert_true(pump_until(query_done, result, WAIT_MS));
}

static void
query_result_clear(QueryResult *result)
{
	g_clear_pointer(&result->page, g_ptr_array_unref);
	g_clear_error(&result->error);
}

/* ------------------------------------------------------------------ */

static void
test_append_ids(Fixture *fixture, gconstpointer data)
{
	g_autoptr(View) view = NULL;
	g_autoptr(GPtrArray) rooms = NULL;

	if (fixture->redis == NULL)
		return;
	view = view_new(fixture->redis->url, 0, NULL);
	g_assert_nonnull(codechat_store_get_epoch(view->store));
	g_assert_cmpuint(strlen(codechat_store_get_epoch(view->store)), ==, 16);
	g_assert_cmpuint(codechat_store_get_last_id(view->store, "a"), ==, 0);
	append(view, "a", "one");
	append(view, "b", "one");
	append(view, "a", "two");
	append(view, "a", "three");
	append(view, "dm:alice:bob", "psst");
	append(view, "b", "two");
	wait_answered(view, 6);
	g_assert_cmpuint(view->n_failed, ==, 0);
	/* callbacks in the order of the appends, per conversation */
	g_assert_cmpuint(view->own->len, ==, 6);
	g_assert_cmpuint(g_array_index(view->own, guint64, 0), ==, 1);
	g_assert_cmpuint(g_array_index(view->own, guint64, 1), ==, 1);
	g_assert_cmpuint(g_array_index(view->own, guint64, 2), ==, 2);
	g_assert_cmpuint(g_array_index(view->own, guint64, 3), ==, 3);
	g_assert_cmpuint(g_array_index(view->own, guint64, 4), ==, 1);
	g_assert_cmpuint(g_array_index(view->own, guint64, 5), ==, 2);
	g_assert_cmpuint(view->remote->len, ==, 0);
	g_assert_cmpuint(codechat_store_get_last_id(view->store, "a"), ==, 3);
	g_assert_cmpuint(codechat_store_get_last_id(view->store, "b"), ==, 2);
	g_assert_cmpuint(codechat_store_get_last_id(view->store, "dm:alice:bob"), ==, 1);
	rooms = codechat_store_list_rooms(view->store);
	g_assert_cmpuint(rooms->len, ==, 2);

	/* the pub/sub copies of our own messages are not delivered again */
	pump_for(200);
	g_assert_cmpuint(view->remote->len, ==, 0);
	g_assert_cmpuint(view->seen->len, ==, 6);
}

/* the SQLite store's semantics, over ids 1..n */
static void
expected_page(guint64 n,
	      guint64 after,
	      guint64 before,
	      guint limit,
	      gboolean newest,
	      GArray *ids,
	      gboolean *more)
{
	g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(guint64));

	for (guint64 id = 1; id <= n; id++) {
		if (id > after && id < before)
			g_array_append_val(all, id);
	}
	*more = limit > 0 && all->len > limit;
	if (newest) {
		guint start = all->len > limit ? all->len - limit : 0;
		for (guint i = start; i < all->len; i++)
			g_array_append_val(ids, g_array_index(all, guint64, i));
	} else {
		for (guint i = 0; i < all->len && i < limit; i++)
			g_array_append_val(ids, g_array_index(all, guint64, i));
	}
}

static void
test_query(Fixture *fixture, gconstpointer data)
{
	g_autoptr(View) view = NULL;
	const guint64 afters[] = {0, 1, 3, 9, 10, 12};
	const guint64 befores[] = {NB, 11, 10, 5, 2, 1, 0};
	const guint limits[] = {0, 1, 3, 10, 100};
	QueryResult result;
	CodechatMessage *msg;
	g_autoptr(CodechatMessage) code = NULL;

	if (fixture->redis == NULL)
		return;
	view = view_new(fixture->redis->url, 0, NULL);
	for (guint i = 1; i <= 10; i++) {
		g_autofree gchar *text = g_strdup_printf("message %u\nwith a line", i);
		append(view, "room", text);
	}
	wait_answered(view, 10);
	g_assert_cmpuint(view->n_failed, ==, 0);

	for (gsize a = 0; a < G_N_ELEMENTS(afters); a++) {
		for (gsize b = 0; b < G_N_ELEMENTS(befores); b++) {
			for (gsize l = 0; l < G_N_ELEMENTS(limits); l++) {
				for (gint newest = 0; newest < 2; newest++) {
					g_autoptr(GArray) want =
					    g_array_new(FALSE, FALSE, sizeof(guint64));
					gboolean want_more = FALSE;

					expected_page(10,
						      afters[a],
						      befores[b],
						      limits[l],
						      newest,
						      want,
						      &want_more);
					query(view->store,
					      "room",
					      afters[a],
					      befores[b],
					      limits[l],
					      newest,
					      &result);
					g_assert_no_error(result.error);
					g_assert_cmpuint(result.page->len, ==, want->len);
					for (guint i = 0; i < want->len; i++) {
						msg = g_ptr_array_index(result.page, i);
						g_assert_cmpuint(msg->id,
								 ==,
								 g_array_index(want, guint64, i));
					}
					if (result.more != want_more)
						g_test_message("after %" G_GUINT64_FORMAT
							       " before %" G_GUINT64_FORMAT
							       " limit %u newest %d",
							       afters[a],
							       befores[b],
							       limits[l],
							       newest);
					g_assert_cmpint(result.more, ==, want_more);
					query_result_clear(&result);
				}
			}
		}
	}

	/* the message comes back whole */
	query(view->store, "room", 4, 6, 10, FALSE, &result);
	g_assert_cmpuint(result.page->len, ==, 1);
	msg = g_ptr_array_index(result.page, 0);
	g_assert_cmpuint(msg->id, ==, 5);
	g_assert_cmpstr(msg->text, ==, "message 5\nwith a line");
	g_assert_cmpstr(msg->room, ==, "room");
	g_assert_null(msg->to);
	g_assert_cmpstr(msg->from, ==, "alice");
	g_assert_cmpint(msg->ts, >, 0);
	query_result_clear(&result);

	code = make_message("dm:alice:bob", "int x;");
	code->kind = CODECHAT_KIND_CODE;
	code->lang = g_strdup("c");
	code->filename = g_strdup("x.c");
	codechat_store_append(view->store, "dm:alice:bob", code, append_cb, view);
	wait_answered(view, 11);
	query(view->store, "dm:alice:bob", 0, NB, 10, TRUE, &result);
	g_assert_cmpuint(result.page->len, ==, 1);
	msg = g_ptr_array_index(result.page, 0);
	g_assert_cmpint(msg->kind, ==, CODECHAT_KIND_CODE);
	g_assert_cmpstr(msg->lang, ==, "c");
	g_assert_cmpstr(msg->filename, ==, "x.c");
	g_assert_cmpstr(msg->to, ==, "bob");
	g_assert_null(msg->room);
	g_assert_cmpint(msg->ts, ==, code->ts);
	query_result_clear(&result);

	/* a conversation without messages */
	query(view->store, "nothing", 0, NB, 10, TRUE, &result);
	g_assert_no_error(result.error);
	g_assert_cmpuint(result.page->len, ==, 0);
	g_assert_false(result.more);
	query_result_clear(&result);
}

static gboolean
both_seen(gconstpointer data)
{
	View *const *views = data;
	return views[0]->seen->len >= 40 && views[1]->seen->len >= 40;
}

static gboolean
knows_carol(gconstpointer data)
{
	return codechat_store_knows_nick(CODECHAT_STORE((gpointer)data), "Carol");
}

static void
test_two_daemons(Fixture *fixture, gconstpointer data)
{
	g_autoptr(View) a = NULL;
	g_autoptr(View) b = NULL;
	g_autoptr(View) fresh = NULL;
	g_autoptr(CodechatTestRedis) other = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(CodechatStore) c = NULL;
	View *views[2];

	if (fixture->redis == NULL)
		return;
	a = view_new(fixture->redis->url, 0, "room");
	b = view_new(fixture->redis->url, 0, "room");
	views[0] = a;
	views[1] = b;
	g_assert_cmpstr(codechat_store_get_epoch(a->store), ==, codechat_store_get_epoch(b->store));

	/* interleaved, none waiting for another */
	for (guint i = 0; i < 20; i++) {
		append(a, "room", "from a");
		append(b, "room", "from b");
		if (i % 5 == 0)
			g_main_context_iteration(NULL, FALSE);
	}
	g_assert_true(pump_until(both_seen, views, WAIT_MS));
	pump_for(200);
	g_assert_cmpuint(a->n_failed + b->n_failed, ==, 0);
	/* each sees 1..40 once and in order, its own by callback */
	assert_ids(a->seen, 1, 40);
	assert_ids(b->seen, 1, 40);
	g_assert_cmpuint(a->own->len, ==, 20);
	g_assert_cmpuint(b->own->len, ==, 20);
	g_assert_cmpuint(a->remote->len, ==, 20);
	g_assert_cmpuint(b->remote->len, ==, 20);
	/* what a appended is what b got as remote, and back */
	for (guint i = 0; i < 20; i++) {
		guint64 id = g_array_index(a->own, guint64, i);
		g_assert_cmpuint(g_array_index(b->remote, guint64, i), ==, id);
		id = g_array_index(b->own, guint64, i);
		g_assert_cmpuint(g_array_index(a->remote, guint64, i), ==, id);
	}
	g_assert_cmpuint(codechat_store_get_last_id(a->store, "room"), ==, 40);
	g_assert_cmpuint(codechat_store_get_last_id(b->store, "room"), ==, 40);

	/* nicks, across */
	g_assert_false(codechat_store_knows_nick(b->store, "Carol"));
	g_assert_true(codechat_store_remember_nick(a->store, "Carol", &error));
	g_assert_no_error(error);
	g_assert_true(codechat_store_knows_nick(a->store, "carol"));
	g_assert_true(pump_until(knows_carol, b->store, WAIT_MS));
	g_assert_true(codechat_store_knows_nick(b->store, "CAROL"));
	g_assert_false(codechat_store_knows_nick(b->store, "dave"));
	/* and by a daemon started later, from the set */
	c = codechat_store_redis_new(fixture->redis->url, 0, &error);
	g_assert_no_error(error);
	g_assert_true(codechat_store_knows_nick(c, "carol"));
	g_assert_cmpuint(codechat_store_get_last_id(c, "room"), ==, 40);
	g_assert_cmpstr(codechat_store_get_epoch(c), ==, codechat_store_get_epoch(a->store));

	/* a fresh Redis is another store: another epoch */
	other = codechat_test_redis_start();
	fresh = view_new(other->url, 0, NULL);
	g_assert_cmpstr(codechat_store_get_epoch(fresh->store),
			!=,
			codechat_store_get_epoch(a->store));
	g_assert_cmpuint(codechat_store_get_last_id(fresh->store, "room"), ==, 0);
}

static gboolean
not_connected(gconstpointer data)
{
	return !is_connected(data);
}

static void
assert_page(QueryResult *result, guint64 first, guint64 last, gboolean more)
{
	g_assert_no_error(result->error);
	g_assert_cmpuint(result->page->len, ==, last - first + 1);
	for (guint i = 0; i < result->page->len; i++)
		g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(result->page, i))->id,
				 ==,
				 first + i);
	g_assert_cmpint(result->more, ==, more);
	query_result_clear(result);
}

static void
assert_overloaded(QueryResult *result)
{
	g_assert_error(result->error, CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED);
	g_assert_null(result->page);
	query_result_clear(result);
}

/* Redis away: pages that the cache of what was delivered holds are
 * answered, with Redis' semantics; the others and appends are not */
static void
test_cache(Fixture *fixture, gconstpointer data)
{
	g_autoptr(View) view = NULL;
	g_autoptr(View) other = NULL;
	const guint64 afters[] = {0, 1, 3, 10, 19, 20, 25};
	const guint64 befores[] = {NB, 21, 20, 11, 5, 2, 1, 0};
	const guint limits[] = {0, 1, 5, 10, 50};
	QueryResult result;
	struct timeval timeout = {2, 0};
	redisContext *c;
	redisReply *reply;

	if (fixture->redis == NULL)
		return;
	view = view_new(fixture->redis->url, 0, NULL);
	other = view_new(fixture->redis->url, 0, "room");
	/* own and remote messages alike */
	for (guint i = 0; i < 10; i++)
		append(view, "room", "own");
	wait_answered(view, 10);
	for (guint i = 0; i < 10; i++)
		append(other, "room", "remote");
	wait_answered(other, 10);
	for (guint i = 0; i < 600; i++)
		append(view, "big", "text");
	wait_answered(view, 610);
	g_assert_cmpuint(view->n_failed, ==, 0);
	g_assert_cmpuint(other->n_failed, ==, 0);
	wait_seen(view, 620);

	/* a query sent as the link drops */
	memset(&result, 0, sizeof(result));
	codechat_store_query_async(view->store, "room", 10, NB, 50, FALSE, query_cb, &result);
	codechat_test_redis_stop(fixture->redis);
	g_assert_true(pump_until(query_done, &result, WAIT_MS));
	assert_page(&result, 11, 20, FALSE);
	g_assert_true(pump_until(not_connected, view->store, WAIT_MS));

	query(view->store, "room", 10, NB, 50, FALSE, &result);
	assert_page(&result, 11, 20, FALSE);
	query(view->store, "room", 0, NB, 5, TRUE, &result);
	assert_page(&result, 16, 20, TRUE);
	query(view->store, "room", 0, 3, 5, TRUE, &result);
	assert_page(&result, 1, 2, FALSE);
	/* all of it held: the same as Redis and SQLite (test_query) */
	for (gsize a = 0; a < G_N_ELEMENTS(afters); a++) {
		for (gsize b = 0; b < G_N_ELEMENTS(befores); b++) {
			for (gsize l = 0; l < G_N_ELEMENTS(limits); l++) {
				for (gint newest = 0; newest < 2; newest++) {
					g_autoptr(GArray) want =
					    g_array_new(FALSE, FALSE, sizeof(guint64));
					gboolean want_more = FALSE;

					expected_page(20,
						      afters[a],
						      befores[b],
						      limits[l],
						      newest,
						      want,
						      &want_more);
					query(view->store,
					      "room",
					      afters[a],
					      befores[b],
					      limits[l],
					      newest,
					      &result);
					g_assert_no_error(result.error);
					g_assert_cmpuint(result.page->len, ==, want->len);
					for (guint i = 0; i < want->len; i++)
						g_assert_cmpuint(
						    ((CodechatMessage *)
							 g_ptr_array_index(result.page, i))
							->id,
						    ==,
						    g_array_index(want, guint64, i));
					g_assert_cmpint(result.more, ==, want_more);
					query_result_clear(&result);
				}
			}
		}
	}

	/* 600: the cache holds the last 500, 101..600 */
	query(view->store, "big", 0, NB, 50, FALSE, &result);
	assert_overloaded(&result);
	query(view->store, "big", 99, NB, 50, FALSE, &result);
	assert_overloaded(&result);
	query(view->store, "big", 100, NB, 50, FALSE, &result);
	assert_page(&result, 101, 150, TRUE);
	query(view->store, "big", 0, NB, 50, TRUE, &result);
	assert_page(&result, 551, 600, TRUE);
	query(view->store, "big", 0, NB, 500, TRUE, &result);
	assert_overloaded(&result); /* is there a 100? only Redis knows */
	query(view->store, "big", 0, 103, 1, TRUE, &result);
	assert_page(&result, 102, 102, TRUE);
	query(view->store, "big", 0, 102, 1, TRUE, &result);
	assert_overloaded(&result);
	query(view->store, "big", 100, 102, 5, TRUE, &result);
	assert_page(&result, 101, 101, FALSE);

	/* writes still fail */
	append(view, "room", "lost");
	wait_answered(view, 611);
	g_assert_cmpuint(view->n_failed, ==, 1);
	g_assert_error(view->last_error, CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED);

	/* back: Redis is the truth again (it lost 5 meanwhile) */
	g_assert_true(codechat_test_redis_restart(fixture->redis));
	g_assert_true(pump_until(is_connected, view->store, WAIT_MS));
	c = redisConnectWithTimeout("127.0.0.1", fixture->redis->port, timeout);
	g_assert_nonnull(c);
	g_assert_cmpint(c->err, ==, 0);
	reply = redisCommand(c, "XDEL codechat:log:room 0-5");
	g_assert_nonnull(reply);
	g_assert_cmpint(reply->integer, ==, 1);
	freeReplyObject(reply);
	redisFree(c);
	query(view->store, "room", 0, NB, 50, FALSE, &result);
	g_assert_no_error(result.error);
	g_assert_cmpuint(result.page->len, ==, 19);
	query_result_clear(&result);
}

/* the bound of all conversations: the oldest messages of the one least
 * recently added to go first */
static void
test_cache_total(Fixture *fixture, gconstpointer data)
{
	g_autoptr(View) view = NULL;
	QueryResult result;

	if (fixture->redis == NULL)
		return;
	g_setenv("CODECHATD_TEST_CACHE_TOTAL", "30", TRUE);
	view = view_new(fixture->redis->url, 0, NULL);
	g_unsetenv("CODECHATD_TEST_CACHE_TOTAL");
	for (guint i = 0; i < 20; i++)
		append(view, "a", "text");
	wait_answered(view, 20);
	for (guint i = 0; i < 20; i++)
		append(view, "b", "text");
	wait_answered(view, 40);
	/* a holds 11..20, b 1..20; then b gives way */
	for (guint i = 0; i < 5; i++)
		append(view, "a", "text");
	wait_answered(view, 45);
	g_assert_cmpuint(view->n_failed, ==, 0);

	codechat_test_redis_stop(fixture->redis);
	g_assert_true(pump_until(not_connected, view->store, WAIT_MS));
	query(view->store, "a", 10, NB, 50, FALSE, &result);
	assert_page(&result, 11, 25, FALSE);
	query(view->store, "a", 9, NB, 50, FALSE, &result);
	assert_overloaded(&result);
	query(view->store, "b", 5, NB, 50, FALSE, &result);
	assert_page(&result, 6, 20, FALSE);
	query(view->store, "b", 4, NB, 50, FALSE, &result);
	assert_overloaded(&result);
}

static void
test_history_max(Fixture *fixture, gconstpointer data)
{
	g_autoptr(View) view = NULL;
	QueryResult result;

	if (fixture->redis == NULL)
		return;
	view = view_new(fixture->redis->url, 3, NULL);
	for (guint i = 0; i < 10; i++)
		append(view, "room", "text");
	wait_answered(view, 10);
	g_assert_cmpuint(view->n_failed, ==, 0);
	assert_ids(view->own, 1, 10);
	query(view->store, "room", 0, NB, 100, FALSE, &result);
	g_assert_no_error(result.error);
	g_assert_cmpuint(result.page->len, ==, 3);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(result.page, 0))->id, ==, 8);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(result.page, 2))->id, ==, 10);
	g_assert_false(result.more);
	query_result_clear(&result);
	g_assert_cmpuint(codechat_store_get_last_id(view->store, "room"), ==, 10);

	/* without Redis, the cache answers no more than Redis did */
	codechat_test_redis_stop(fixture->redis);
	g_assert_true(pump_until(not_connected, view->store, WAIT_MS));
	query(view->store, "room", 0, NB, 100, FALSE, &result);
	g_assert_no_error(result.error);
	g_assert_cmpuint(result.page->len, ==, 3);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(result.page, 0))->id, ==, 8);
	g_assert_false(result.more);
	query_result_clear(&result);
	query(view->store, "room", 0, NB, 2, TRUE, &result);
	g_assert_no_error(result.error);
	g_assert_cmpuint(result.page->len, ==, 2);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(result.page, 0))->id, ==, 9);
	g_assert_true(result.more);
	query_result_clear(&result);
	query(view->store, "room", 0, 9, 5, TRUE, &result);
	g_assert_no_error(result.error);
	g_assert_cmpuint(result.page->len, ==, 1);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(result.page, 0))->id, ==, 8);
	g_assert_false(result.more);
	query_result_clear(&result);
}

static gchar *
only_origin(redisContext *c);

/* kills the connections of the daemon named codechat-@origin */
static void
kill_clients(CodechatTestRedis *redis, const gchar *origin)
{
	g_autofree gchar *name = g_strdup_printf(" name=codechat-%s ", origin);
	struct timeval timeout = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", redis->port, timeout);
	redisReply *reply;
	g_auto(GStrv) lines = NULL;
	guint killed = 0;

	g_assert_nonnull(c);
	g_assert_cmpint(c->err, ==, 0);
	reply = redisCommand(c, "CLIENT LIST");
	g_assert_nonnull(reply);
	g_assert_cmpint(reply->type, ==, REDIS_REPLY_STRING);
	lines = g_strsplit(reply->str, "\n", -1);
	freeReplyObject(reply);
	for (guint i = 0; lines[i] != NULL; i++) {
		g_autofree gchar *id = NULL;
		if (strstr(lines[i], name) == NULL || !g_str_has_prefix(lines[i], "id="))
			continue;
		id = g_strndup(lines[i] + 3, strcspn(lines[i] + 3, " "));
		reply = redisCommand(c, "CLIENT KILL ID %s", id);
		g_assert_nonnull(reply);
		freeReplyObject(reply);
		killed++;
	}
	redisFree(c);
	g_assert_cmpuint(killed, ==, 2);
}

/* the origin of the one daemon connected so far, from its client name */
static gchar *
only_origin(redisContext *c)
{
	redisReply *reply = redisCommand(c, "CLIENT LIST");
	const gchar *name;
	gchar *origin;

	g_assert_nonnull(reply);
	g_assert_cmpint(reply->type, ==, REDIS_REPLY_STRING);
	name = strstr(reply->str, " name=codechat-");
	g_assert_nonnull(name);
	name += strlen(" name=codechat-");
	origin = g_strndup(name, strcspn(name, " "));
	freeReplyObject(reply);
	return origin;
}

/*
 * Our own message can come back on the channel before Redis' reply to
 * the append (two connections): it must wait for the reply, and not be
 * delivered as another daemon's.  The copy is published here before the
 * append is even sent, so that it surely comes first.
 */
static void
test_own_copy_first(Fixture *fixture, gconstpointer data)
{
	g_autoptr(View) view = NULL;
	g_autofree gchar *origin = NULL;
	struct timeval timeout = {2, 0};
	redisContext *c;
	redisReply *reply;

	if (fixture->redis == NULL)
		return;
	view = view_new(fixture->redis->url, 0, NULL);
	c = redisConnectWithTimeout("127.0.0.1", fixture->redis->port, timeout);
	g_assert_nonnull(c);
	g_assert_cmpint(c->err, ==, 0);
	origin = only_origin(c);
	for (guint i = 0; i < 5; i++) {
		g_autoptr(CodechatMessage) msg = make_message("room", "mine");
		g_autofree gchar *copy = g_strdup_printf(
		    "m\nroom\n%u\n%s\n{\"room\":\"room\",\"from\":\"alice\",\"ts\":1,"
		    "\"kind\":0,\"text\":\"mine\"}",
		    i + 1,
		    origin);

		codechat_store_append(view->store, "room", msg, append_cb, view);
		reply = redisCommand(c, "PUBLISH codechat:messages:0 %s", copy);
		g_assert_nonnull(reply);
		g_assert_cmpint(reply->integer, ==, 1);
		freeReplyObject(reply);
		wait_answered(view, i + 1);
	}
	redisFree(c);
	pump_for(100);
	g_assert_cmpuint(view->n_failed, ==, 0);
	assert_ids(view->own, 1, 5);
	g_assert_cmpuint(view->remote->len, ==, 0);
	assert_ids(view->seen, 1, 5);
}

/* a Redis that lost its data must not hand out ids from 1 again */
static void
test_flushed(Fixture *fixture, gconstpointer data)
{
	g_autoptr(View) view = NULL;
	struct timeval timeout = {2, 0};
	redisContext *c;
	redisReply *reply;

	if (fixture->redis == NULL)
		return;
	view = view_new(fixture->redis->url, 0, NULL);
	append(view, "room", "kept");
	wait_answered(view, 1);
	g_assert_cmpuint(view->n_failed, ==, 0);
	c = redisConnectWithTimeout("127.0.0.1", fixture->redis->port, timeout);
	g_assert_nonnull(c);
	g_assert_cmpint(c->err, ==, 0);
	reply = redisCommand(c, "FLUSHALL");
	g_assert_nonnull(reply);
	freeReplyObject(reply);

	append(view, "room", "after the flush");
	wait_answered(view, 2);
	g_assert_cmpuint(view->n_failed, ==, 1);
	g_assert_error(view->last_error, CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED);
	reply = redisCommand(c, "EXISTS codechat:last codechat:log:room");
	g_assert_nonnull(reply);
	g_assert_cmpint(reply->integer, ==, 0);
	freeReplyObject(reply);
	/* and stays refused, even once a new epoch is there */
	reply = redisCommand(c, "SET codechat:epoch another");
	freeReplyObject(reply);
	append(view, "room", "later");
	wait_answered(view, 3);
	g_assert_cmpuint(view->n_failed, ==, 2);
	redisFree(c);
	g_assert_cmpuint(view->own->len, ==, 1);
}

static void
test_lost(Fixture *fixture, gconstpointer data)
{
	g_autoptr(View) a = NULL;
	g_autoptr(View) b = NULL;
	g_autofree gchar *origin = NULL;
	struct timeval timeout = {2, 0};
	redisContext *c;
	QueryResult result;

	if (fixture->redis == NULL)
		return;
	a = view_new(fixture->redis->url, 0, "room");
	append(a, "room", "before");
	wait_answered(a, 1);
	c = redisConnectWithTimeout("127.0.0.1", fixture->redis->port, timeout);
	g_assert_nonnull(c);
	g_assert_cmpint(c->err, ==, 0);
	origin = only_origin(c);
	redisFree(c);
	b = view_new(fixture->redis->url, 0, "room");

	/* a's connections drop; b appends before a can be back (it waits
	 * 100 ms): a reads it from the stream once reconnected */
	kill_clients(fixture->redis, origin);
	append(b, "room", "while a was away");
	wait_answered(b, 1);
	g_assert_cmpuint(b->n_failed, ==, 0);
	g_assert_cmpuint(g_array_index(b->own, guint64, 0), ==, 2);
	wait_seen(a, 2);
	assert_ids(a->seen, 1, 2);
	g_assert_cmpuint(a->remote->len, ==, 1);
	g_assert_true(pump_until(is_connected, a->store, WAIT_MS));

	/* Redis goes away: appends and queries fail, nothing crashes */
	codechat_test_redis_stop(fixture->redis);
	g_assert_true(pump_until(not_connected, a->store, WAIT_MS));
	append(a, "room", "lost");
	wait_answered(a, 2);
	g_assert_cmpuint(a->n_failed, ==, 1);
	g_assert_error(a->last_error, CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED);
	/* what the cache holds is answered (test_cache), the rest is not */
	query(a->store, "room", 0, NB, 10, TRUE, &result);
	g_assert_no_error(result.error);
	g_assert_cmpuint(result.page->len, ==, 2);
	query_result_clear(&result);
	query(a->store, "elsewhere", 0, NB, 10, TRUE, &result);
	g_assert_no_error(result.error);
	g_assert_cmpuint(result.page->len, ==, 0);
	query_result_clear(&result);
	/* a few rounds of the backoff */
	pump_for(400);

	/* back, over the same files: both reconnect by themselves */
	g_assert_true(codechat_test_redis_restart(fixture->redis));
	g_assert_true(pump_until(is_connected, a->store, WAIT_MS));
	g_assert_true(pump_until(is_connected, b->store, WAIT_MS));
	append(b, "room", "after");
	wait_answered(b, 2);
	g_assert_cmpuint(b->n_failed, ==, 0);
	g_assert_cmpuint(g_array_index(b->own, guint64, 1), ==, 3);
	wait_seen(a, 3);
	append(a, "room", "after, from a");
	wait_answered(a, 3);
	g_assert_cmpuint(a->n_failed, ==, 1);
	assert_ids(a->seen, 1, 4);
	wait_seen(b, 3);
	pump_for(100);
	assert_ids(b->seen, 2, 4);
	query(a->store, "room", 0, NB, 10, FALSE, &result);
	g_assert_no_error(result.error);
	g_assert_cmpuint(result.page->len, ==, 4);
	query_result_clear(&result);
}

static void
test_bad_url(void)
{
	const gchar *bad[] = {"http://localhost",
			      "redis://",
			      "redis://host/x",
			      "unix://host/p",
			      "unix:///p?x=1",
			      "nonsense",
			      "redis://h:1/2?db=3"};
	gchar *host, *path;
	gint port, db;
	g_autoptr(GError) error = NULL;

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_assert_false(
		    codechat_store_redis_parse_url(bad[i], &host, &port, &path, &db, &error));
		g_assert_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
		g_clear_error(&error);
	}
	g_assert_true(codechat_store_redis_parse_url("redis://h", &host, &port, &path, &db, NULL));
	g_assert_cmpstr(host, ==, "h");
	g_assert_cmpint(port, ==, 6379);
	g_assert_cmpint(db, ==, 0);
	g_free(host);
	g_assert_true(codechat_store_redis_parse_url("redis://127.0.0.1:7000/3",
						     &host,
						     &port,
						     &path,
						     &db,
						     NULL));
	g_assert_cmpstr(host, ==, "127.0.0.1");
	g_assert_cmpint(port, ==, 7000);
	g_assert_cmpint(db, ==, 3);
	g_assert_null(path);
	g_free(host);
	g_assert_true(codechat_store_redis_parse_url("unix:///run/redis.sock?db=2",
						     &host,
						     &port,
						     &path,
						     &db,
						     NULL));
	g_assert_null(host);
	g_assert_cmpstr(path, ==, "/run/redis.sock");
	g_assert_cmpint(db, ==, 2);
	g_free(path);

	/* nobody there: a clear error at once */
	g_assert_null(codechat_store_redis_new("unix:///nonexistent/redis.sock", 0, &error));
	g_assert_nonnull(error);
	g_assert_true(
	    g_str_has_prefix(error->message,
			     "cannot connect to Redis at unix:///nonexistent/redis.sock: "));
}

static void
test_database(Fixture *fixture, gconstpointer data)
{
	g_autofree gchar *url1 = NULL;
	g_autoptr(View) zero = NULL;
	g_autoptr(View) one = NULL;

	if (fixture->redis == NULL)
		return;
	/* two deployments in two databases of one Redis do not meet */
	url1 = g_strdup_printf("%s/1", fixture->redis->url);
	zero = view_new(fixture->redis->url, 0, NULL);
	one = view_new(url1, 0, NULL);
	g_assert_cmpstr(codechat_store_get_epoch(zero->store),
			!=,
			codechat_store_get_epoch(one->store));
	append(zero, "room", "zero");
	append(one, "room", "one");
	wait_answered(zero, 1);
	wait_answered(one, 1);
	pump_for(200);
	g_assert_cmpuint(zero->seen->len, ==, 1);
	g_assert_cmpuint(one->seen->len, ==, 1);
	g_assert_cmpuint(g_array_index(one->own, guint64, 0), ==, 1);
}

/* codechatd with --redis: wrong URLs and an absent Redis stop it with
 * exit status 1 and a message; with Redis, a message lands in its stream */
static gint
run_daemon(const gchar *const *args, const gchar *env_redis, gchar **err)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
	    G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;

	if (env_redis != NULL)
		g_subprocess_launcher_setenv(launcher, "CODECHATD_REDIS", env_redis, TRUE);
	g_ptr_array_add(argv, (gpointer)codechat_test_daemon_path());
	for (guint i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)args[i]);
	g_ptr_array_add(argv, NULL);
	proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	g_subprocess_communicate_utf8(proc, NULL, NULL, NULL, err, &error);
	g_assert_no_error(error);
	g_assert_true(g_subprocess_get_if_exited(proc));
	return g_subprocess_get_exit_status(proc);
}

static void
test_daemon(Fixture *fixture, gconstpointer data)
{
	g_autoptr(CodechatTestDaemon) daemon = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *closed = NULL;
	const gchar *bad[] = {"--bus", "none", "--redis", "http://localhost/", NULL};
	const gchar *none[] = {"--bus", "none", NULL};
	const gchar *absent[] = {"--bus", "none", "--redis", NULL, NULL};
	const gchar *args[] = {"--redis", NULL, "--history-max", "2", NULL};
	struct timeval timeout = {2, 0};
	redisContext *c;
	redisReply *reply;

	if (fixture->redis == NULL)
		return;
	g_assert_cmpint(run_daemon(bad, NULL, &err), ==, 1);
	g_assert_nonnull(strstr(err, "--redis: “http://localhost/”"));
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(run_daemon(none, "redis://h/x", &err), ==, 1);
	g_assert_nonnull(strstr(err, "--redis: “redis://h/x”"));
	g_clear_pointer(&err, g_free);
	/* a port where nothing listens: the test's own Redis, stopped */
	closed = g_strdup(fixture->redis->url);
	codechat_test_redis_stop(fixture->redis);
	absent[3] = closed;
	g_assert_cmpint(run_daemon(absent, NULL, &err), ==, 1);
	g_assert_nonnull(strstr(err, "cannot connect to Redis at redis://127.0.0.1:"));
	g_clear_pointer(&err, g_free);
	g_assert_true(codechat_test_redis_restart(fixture->redis));

	args[1] = fixture->redis->url;
	daemon = codechat_test_daemon_start(args);
	for (guint i = 0; i < 3; i++) {
		g_assert_cmpint(codechat_test_client_run(NULL,
							 NULL,
							 &out,
							 &err,
							 "--server",
							 daemon->uri,
							 "--nick",
							 "alice",
							 "send",
							 "--room",
							 "lobby",
							 "hello",
							 NULL),
				==,
				0);
		g_clear_pointer(&out, g_free);
		g_clear_pointer(&err, g_free);
	}
	c = redisConnectWithTimeout("127.0.0.1", fixture->redis->port, timeout);
	g_assert_nonnull(c);
	reply = redisCommand(c, "HGET codechat:last lobby");
	g_assert_nonnull(reply);
	g_assert_cmpstr(reply->str, ==, "3");
	freeReplyObject(reply);
	/* --history-max 2 */
	reply = redisCommand(c, "XRANGE codechat:log:lobby - +");
	g_assert_nonnull(reply);
	g_assert_cmpuint(reply->elements, ==, 2);
	g_assert_cmpstr(reply->element[0]->element[0]->str, ==, "0-2");
	freeReplyObject(reply);
	reply = redisCommand(c, "SISMEMBER codechat:nicks alice");
	g_assert_nonnull(reply);
	g_assert_cmpint(reply->integer, ==, 1);
	freeReplyObject(reply);
	redisFree(c);
	g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	/* the store warns when it loses Redis, which these tests make it do;
	 * criticals stay fatal (structured logging ignores
	 * g_test_log_set_fatal_handler()) */
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

#define ADD(path, func) g_test_add(path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
	ADD("/codechat/store-redis/append-ids", test_append_ids);
	ADD("/codechat/store-redis/query", test_query);
	ADD("/codechat/store-redis/two-daemons", test_two_daemons);
	ADD("/codechat/store-redis/history-max", test_history_max);
	ADD("/codechat/store-redis/lost", test_lost);
	ADD("/codechat/store-redis/cache", test_cache);
	ADD("/codechat/store-redis/cache-total", test_cache_total);
	ADD("/codechat/store-redis/database", test_database);
	ADD("/codechat/store-redis/own-copy-first", test_own_copy_first);
	ADD("/codechat/store-redis/daemon", test_daemon);
	ADD("/codechat/store-redis/flushed", test_flushed);
#undef ADD
	g_test_add_func("/codechat/store-redis/bad-url", test_bad_url);
	return g_test_run();
}
