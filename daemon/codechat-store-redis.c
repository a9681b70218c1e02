/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <glib/gi18n.h>
#include <hiredis/adapters/glib.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <string.h>

#include "codechat-store-redis.h"

/*
 * The shared store: every daemon of a deployment keeps its history in one
 * Redis logical database.
 *
 *   codechat:epoch         a random hex string, SET NX by the first daemon
 *   codechat:last          HASH conversation -> its last id
 *   codechat:log:CONV      STREAM of a conversation; entry id "0-ID",
 *                          fields o (origin: the daemon instance) and
 *                          m (the message as JSON, without its id)
 *   codechat:nicks         SET of the known nicks, folded
 *   codechat:messages:DB   the channel (channels are not per database):
 *                          "m\nCONV\nID\nORIGIN\nJSON" for a message,
 *                          "n\nFOLD" for a new nick
 *
 * An append is one Lua script (HINCRBY, XADD, XTRIM, PUBLISH), so ids are
 * strictly increasing per conversation across all daemons.  The replies
 * of our own appends come on the command connection and the messages of
 * the others on a subscriber connection: per conversation the store keeps
 * the last id delivered and a map of what came early, and delivers
 * (calls an append's callback, or emits "remote-message") strictly in id
 * order.  An id missing for GAP_MS, or after a (re)subscribe, is fetched
 * with XRANGE; ids that the stream no longer has (trimmed) are skipped.
 *
 * Startup blocks once, on a synchronous connection: the daemon must not
 * serve before it knows the epoch and the last ids, and cannot without
 * Redis.  Everything after runs on the main loop (hiredis' GLib adapter).
 * An append whose reply is lost with the connection fails for its sender,
 * though Redis may have stored it: the other daemons, and this one once
 * reconnected, then deliver it as a remote message.
 *
 * Each conversation keeps its last CACHE_PER_CONV delivered messages
 * (refs, ids contiguous up to the last delivered): without Redis, a query
 * that they provably answer whole is answered from them, the others fail
 * with overloaded.  Memory: at most CACHE_PER_CONV messages per
 * conversation and CACHE_TOTAL in all, the oldest of the conversation
 * least recently added to going first.
 */

#define PREFIX	      "codechat:"
#define KEY_EPOCH     PREFIX "epoch"
#define KEY_LAST      PREFIX "last"
#define KEY_NICKS     PREFIX "nicks"
#define KEY_LOG	      PREFIX "log:"
#define GAP_MS	      50
#define FETCH_COUNT   1000
#define CONNECT_S     5
#define FLUSH_WAIT_US (2 * G_USEC_PER_SEC)
/* the read cache: one full history page per conversation (see PROTOCOL.md) */
#define CACHE_PER_CONV 500
/* and of all conversations together (CODECHATD_TEST_CACHE_TOTAL in tests) */
#define CACHE_TOTAL 100000

/* a Redis that lost the deployment's data (its epoch) would count ids
 * from 1 again: the append fails instead */
static const gchar append_script[] =
    "if redis.call('GET', KEYS[3]) ~= ARGV[6] then\n"
    "  return redis.error_reply('EPOCH this Redis lost the epoch of the store')\n"
    "end\n"
    "local id = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
    "redis.call('XADD', KEYS[2], '0-' .. id, 'o', ARGV[2], 'm', ARGV[3])\n"
    "local max = tonumber(ARGV[4])\n"
    "if max > 0 then redis.call('XTRIM', KEYS[2], 'MAXLEN', max) end\n"
    "redis.call('PUBLISH', ARGV[5], 'm\\n' .. ARGV[1] .. '\\n' .. id .. '\\n' .. ARGV[2] .. "
    "'\\n' .. ARGV[3])\n"
    "return id\n";

static const gchar nick_script[] = "if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then\n"
				   "  redis.call('PUBLISH', ARGV[2], 'n\\n' .. ARGV[1])\n"
				   "end\n"
				   "return 0\n";

typedef enum {
	PENDING_REMOTE,	  /* another daemon's (or a lost reply's): deliverable */
	PENDING_OWN,	  /* our append, answered: deliverable */
	PENDING_OWN_COPY, /* the pub/sub copy of our append, its reply not in yet */
} PendingState;

typedef struct {
	PendingState state;
	CodechatMessage *msg; /* (owned) */
	CodechatStoreAppendFunc func;
	gpointer user_data;
} Pending;

typedef struct {
	gchar *key;	   /* (owned) */
	guint64 delivered; /* the last id delivered */
	guint64 known;	   /* the highest id known to exist */
	guint inflight;	   /* our appends sent, not answered */
	GHashTable *early; /* (owned) id (guint64 *) -> Pending: above delivered */
	guint gap_id;	   /* GSource id, 0 if none */
	gboolean fetching; /* an XRANGE of the gap is in flight */
	gpointer store;	   /* (unowned) CodechatStoreRedis */
	/* (owned) (element-type CodechatMessage) the last messages delivered,
	 * contiguous ids ending at @delivered, at most CACHE_PER_CONV */
	GPtrArray *cache;
	GList *lru_link; /* in the store's cache_lru, NULL while cache is empty */
} Conv;

typedef struct {
	gpointer store; /* (unowned) CodechatStoreRedis */
	redisAsyncContext *ac;
	GSource *source; /* (owned) (nullable) */
	gboolean subscriber;
	gboolean connected;
} Link;

struct _CodechatStoreRedis {
	GObject parent_instance;
	gchar *url;	    /* (owned) */
	gchar *host;	    /* (owned) (nullable) */
	gchar *socket_path; /* (owned) (nullable) */
	gint port;
	gint db;
	guint history_max;
	gchar *epoch;	       /* (owned) */
	gchar *origin;	       /* (owned) this instance */
	gchar *channel;	       /* (owned) */
	gchar *script_sha;     /* (owned) */
	GHashTable *convs;     /* (owned) key -> Conv */
	GHashTable *nicks;     /* (owned) folded nick set */
	GHashTable *unsent;    /* (owned) folded nicks not in Redis yet */
	GMainContext *context; /* (owned) */
	Link cmd;
	Link sub;
	guint reconnect_id;   /* GSource id, 0 if none */
	GPtrArray *graveyard; /* (owned) (element-type GSource) to destroy */
	guint bury_id;	      /* GSource id, 0 if none */
	guint backoff_ms;
	gboolean lost;	/* the loss was logged, recovery not yet */
	gboolean reset; /* Redis came back with another epoch */
	gboolean disposing;
	guint n_inflight;
	GQueue cache_lru; /* (element-type Conv) cached ones, least recently added to first */
	guint cache_total;
	guint cache_max;
	CodechatStoreCommitFunc commit_func; /* (nullable) */
	gpointer commit_data;
	GDestroyNotify commit_notify;
};

static void
codechat_store_redis_iface_init(CodechatStoreInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE(CodechatStoreRedis,
			      codechat_store_redis,
			      G_TYPE_OBJECT,
			      G_IMPLEMENT_INTERFACE(CODECHAT_TYPE_STORE,
						    codechat_store_redis_iface_init))

/* timers on the store's context, which need not be the global default */
static guint
add_timeout(CodechatStoreRedis *self, guint ms, GSourceFunc func, gpointer data)
{
	GSource *source = ms > 0 ? g_timeout_source_new(ms) : g_idle_source_new();
	guint id;

	g_source_set_callback(source, func, data, NULL);
	id = g_source_attach(source, self->context);
	g_source_unref(source);
	return id;
}

static void
remove_timeout(CodechatStoreRedis *self, guint *id)
{
	GSource *source;

	if (*id == 0)
		return;
	source = g_main_context_find_source_by_id(self->context, *id);
	if (source != NULL)
		g_source_destroy(source);
	*id = 0;
}

static void
pending_free(Pending *p)
{
	g_clear_pointer(&p->msg, codechat_message_unref);
	g_free(p);
}

static void
conv_free(Conv *conv)
{
	remove_timeout(conv->store, &conv->gap_id);
	g_hash_table_unref(conv->early);
	g_ptr_array_unref(conv->cache);
	g_free(conv->key);
	g_free(conv);
}

static Conv *
get_conv(CodechatStoreRedis *self, const gchar *key)
{
	Conv *conv = g_hash_table_lookup(self->convs, key);

	if (conv == NULL) {
		conv = g_new0(Conv, 1);
		conv->key = g_strdup(key);
		conv->store = self;
		conv->early = g_hash_table_new_full(g_int64_hash,
						    g_int64_equal,
						    g_free,
						    (GDestroyNotify)pending_free);
		conv->cache =
		    g_ptr_array_new_with_free_func((GDestroyNotify)codechat_message_unref);
		g_hash_table_insert(self->convs, conv->key, conv);
	}
	return conv;
}

static void
set_unavailable(GError **error)
{
	g_set_error_literal(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_OVERLOADED,
			    _("the history store is unavailable"));
}

/* the message in the stream and on the channel: JSON without the id */
static gchar *
payload_build(const CodechatMessage *msg)
{
	g_autoptr(JsonBuilder) builder = json_builder_new();
	g_autoptr(JsonGenerator) generator = json_generator_new();
	g_autoptr(JsonNode) root = NULL;

	json_builder_begin_object(builder);
	if (msg->room != NULL) {
		json_builder_set_member_name(builder, "room");
		json_builder_add_string_value(builder, msg->room);
	}
	if (msg->to != NULL) {
		json_builder_set_member_name(builder, "to");
		json_builder_add_string_value(builder, msg->to);
	}
	json_builder_set_member_name(builder, "from");
	json_builder_add_string_value(builder, msg->from != NULL ? msg->from : "");
	json_builder_set_member_name(builder, "ts");
	json_builder_add_int_value(builder, msg->ts);
	json_builder_set_member_name(builder, "kind");
	json_builder_add_int_value(builder, (gint64)msg->kind);
	json_builder_set_member_name(builder, "text");
	json_builder_add_string_value(builder, msg->text != NULL ? msg->text : "");
	if (msg->lang != NULL) {
		json_builder_set_member_name(builder, "lang");
		json_builder_add_string_value(builder, msg->lang);
	}
	if (msg->filename != NULL) {
		json_builder_set_member_name(builder, "filename");
		json_builder_add_string_value(builder, msg->filename);
	}
	json_builder_end_object(builder);
	root = json_builder_get_root(builder);
	json_generator_set_root(generator, root);
	return json_generator_to_data(generator, NULL);
}

static gchar *
member_dup(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING)
		return NULL;
	return g_strdup(json_node_get_string(node));
}

static CodechatMessage *
payload_parse(const gchar *json, gsize len, guint64 id)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(CodechatMessage) msg = NULL;
	JsonObject *obj;

	if (!json_parser_load_from_data(parser, json, (gssize)len, NULL) ||
	    !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
		return NULL;
	obj = json_node_get_object(json_parser_get_root(parser));
	msg = codechat_message_new();
	msg->id = id;
	msg->room = member_dup(obj, "room");
	msg->to = member_dup(obj, "to");
	msg->from = member_dup(obj, "from");
	msg->text = member_dup(obj, "text");
	msg->lang = member_dup(obj, "lang");
	msg->filename = member_dup(obj, "filename");
	msg->ts = json_object_get_int_member_with_default(obj, "ts", 0);
	msg->kind = (CodechatKind)json_object_get_int_member_with_default(obj, "kind", 0);
	if (msg->from == NULL || msg->text == NULL)
		return NULL;
	return g_steal_pointer(&msg);
}

/* "0-ID" */
static gboolean
parse_entry_id(const gchar *str, guint64 *id)
{
	const gchar *dash = str != NULL ? strchr(str, '-') : NULL;

	return dash != NULL && g_ascii_string_to_unsigned(dash + 1, 10, 1, G_MAXUINT64, id, NULL);
}

/* delivering in order */

static void
fetch_gap(CodechatStoreRedis *self, Conv *conv);

static gboolean
gap_cb(gpointer user_data)
{
	Conv *conv = user_data;

	conv->gap_id = 0;
	fetch_gap(conv->store, conv);
	return G_SOURCE_REMOVE;
}

/* the read cache, for queries while Redis is away: what was delivered
 * last, in id order and without holes, so a page that lies within it is
 * answered exactly as Redis would; memory: per conversation at most
 * CACHE_PER_CONV messages (their refs), CACHE_TOTAL in all */
static void
cache_drop(CodechatStoreRedis *self, Conv *conv, guint n)
{
	g_ptr_array_remove_range(conv->cache, 0, n);
	self->cache_total -= n;
	if (conv->cache->len == 0 && conv->lru_link != NULL) {
		g_queue_delete_link(&self->cache_lru, conv->lru_link);
		conv->lru_link = NULL;
	}
}

static void
cache_add(CodechatStoreRedis *self, Conv *conv, CodechatMessage *msg)
{
	CodechatMessage *last =
	    conv->cache->len > 0 ? g_ptr_array_index(conv->cache, conv->cache->len - 1) : NULL;

	if (last != NULL && msg->id != last->id + 1)
		cache_drop(self, conv, conv->cache->len);
	g_ptr_array_add(conv->cache, codechat_message_ref(msg));
	self->cache_total++;
	if (conv->lru_link != NULL) {
		g_queue_unlink(&self->cache_lru, conv->lru_link);
	} else {
		conv->lru_link = g_list_alloc();
		conv->lru_link->data = conv;
	}
	g_queue_push_tail_link(&self->cache_lru, conv->lru_link);
	if (conv->cache->len > CACHE_PER_CONV)
		cache_drop(self, conv, 1);
	/* over the total: the oldest of the conversation least recently
	 * added to go */
	while (self->cache_total > self->cache_max)
		cache_drop(self, g_queue_peek_head(&self->cache_lru), 1);
}

/* answers a query (its @before at most delivered + 1) from the cache if
 * the cache holds the whole page; FALSE if it does not */
static gboolean
cache_query(CodechatStoreRedis *self,
	    Conv *conv,
	    guint64 after,
	    guint64 before,
	    guint limit,
	    gboolean newest,
	    GPtrArray **page,
	    gboolean *more)
{
	guint64 first, lo, hi, start, end;

	if (conv == NULL || conv->cache->len == 0 ||
	    ((CodechatMessage *)g_ptr_array_index(conv->cache, conv->cache->len - 1))->id !=
		conv->delivered)
		return FALSE;
	first = ((CodechatMessage *)g_ptr_array_index(conv->cache, 0))->id;
	/* Redis keeps no more than history_max of them */
	lo = after < G_MAXUINT64 ? after + 1 : G_MAXUINT64;
	if (self->history_max > 0 && conv->delivered >= self->history_max &&
	    lo < conv->delivered - self->history_max + 1)
		lo = conv->delivered - self->history_max + 1;
	hi = before - 1;
	*page = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_message_unref);
	*more = FALSE;
	if (lo > hi || limit == 0)
		return TRUE;
	if (newest) {
		start = hi - lo + 1 > limit ? hi - limit + 1 : lo;
		end = hi;
		*more = start > lo;
	} else {
		start = lo;
		end = hi - lo + 1 > limit ? lo + limit - 1 : hi;
		*more = end < hi;
	}
	/* older ones exist: one of them must be in the cache to be sure */
	if (start < first || (newest && *more && start - 1 < first)) {
		g_clear_pointer(page, g_ptr_array_unref);
		return FALSE;
	}
	for (guint64 id = start; id <= end; id++)
		g_ptr_array_add(*page,
				codechat_message_ref(g_ptr_array_index(conv->cache, id - first)));
	return TRUE;
}

static void
deliver_one(CodechatStoreRedis *self, Conv *conv, Pending *p)
{
	cache_add(self, conv, p->msg);
	conv->delivered = p->msg->id;
	if (p->state == PENDING_OWN)
		p->func(p->msg, NULL, p->user_data);
	else
		codechat_store_emit_remote_message(CODECHAT_STORE(self), conv->key, p->msg);
}

/* delivers what is next in order; ids up to @gone that are not there are
 * skipped (the stream lost them: trimmed) */
static void
deliver(CodechatStoreRedis *self, Conv *conv, guint64 gone)
{
	guint64 skipped = 0;

	for (;;) {
		guint64 next = conv->delivered + 1;
		gpointer key = NULL;
		Pending *p = NULL;

		if (!g_hash_table_lookup_extended(conv->early, &next, NULL, (gpointer *)&p)) {
			if (next <= gone) {
				conv->delivered = next;
				skipped++;
				continue;
			}
			break;
		}
		/* our own, still waiting for its reply: the reply delivers it */
		if (p->state == PENDING_OWN_COPY && conv->inflight > 0)
			break;
		g_hash_table_steal_extended(conv->early, &next, &key, NULL);
		if (p->state == PENDING_OWN_COPY)
			p->state = PENDING_REMOTE;
		deliver_one(self, conv, p);
		g_free(key);
		pending_free(p);
	}
	if (skipped > 0)
		g_message("%" G_GUINT64_FORMAT " messages of %s are gone from Redis (trimmed); "
			  "delivering from %" G_GUINT64_FORMAT,
			  skipped,
			  conv->key,
			  conv->delivered + 1);

	/* something is missing: wait a little for it, then read it */
	if (conv->known > conv->delivered || g_hash_table_size(conv->early) > 0) {
		guint64 next = conv->delivered + 1;
		if (!g_hash_table_contains(conv->early, &next) && !conv->fetching &&
		    conv->gap_id == 0 && !self->disposing)
			conv->gap_id = add_timeout(self, GAP_MS, gap_cb, conv);
	} else {
		remove_timeout(self, &conv->gap_id);
	}
}

static void
add_early(Conv *conv, guint64 id, Pending *p)
{
	guint64 *key = g_new(guint64, 1);

	*key = id;
	if (id > conv->known)
		conv->known = id;
	g_hash_table_replace(conv->early, key, p);
}

/* a message read from the channel or the stream */
static void
take_remote(CodechatStoreRedis *self,
	    Conv *conv,
	    guint64 id,
	    const gchar *origin,
	    CodechatMessage *msg)
{
	Pending *old;
	Pending *p;

	if (id <= conv->delivered)
		return;
	old = g_hash_table_lookup(conv->early, &id);
	if (old != NULL)
		return;
	p = g_new0(Pending, 1);
	p->msg = codechat_message_ref(msg);
	p->state = g_strcmp0(origin, self->origin) == 0 ? PENDING_OWN_COPY : PENDING_REMOTE;
	add_early(conv, id, p);
}

/* Redis replies */

/* the data is gone (a FLUSHALL, a Redis without persistence restarted):
 * ids would start again from 1 under the same epoch, so nothing more is
 * appended; the daemon needs a restart, which takes the new epoch */
static void
note_reset(CodechatStoreRedis *self, const gchar *epoch)
{
	if (!self->reset)
		g_warning("Redis at %s has lost this deployment's data (epoch %s, not %s): "
			  "refusing to append; restart codechatd",
			  self->url,
			  epoch,
			  self->epoch);
	self->reset = TRUE;
}

static gboolean
reply_ok(redisReply *reply, GError **error)
{
	if (reply == NULL) {
		set_unavailable(error);
		return FALSE;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_OVERLOADED,
			    "%s: %s",
			    _("the history store is unavailable"),
			    reply->str);
		return FALSE;
	}
	return TRUE;
}

static const gchar *
entry_field(redisReply *fields, const gchar *name, gsize *len)
{
	if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (gsize i = 0; i + 1 < fields->elements; i += 2) {
		redisReply *k = fields->element[i];
		redisReply *v = fields->element[i + 1];
		if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
		    strcmp(k->str, name) == 0) {
			if (len != NULL)
				*len = (gsize)v->len;
			return v->str;
		}
	}
	return NULL;
}

/* one XRANGE entry: [id, [field, value, ...]] */
static CodechatMessage *
entry_parse(redisReply *entry, guint64 *id, const gchar **origin)
{
	const gchar *json;
	gsize len = 0;

	if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
	    entry->element[0]->type != REDIS_REPLY_STRING ||
	    !parse_entry_id(entry->element[0]->str, id))
		return NULL;
	json = entry_field(entry->element[1], "m", &len);
	if (origin != NULL)
		*origin = entry_field(entry->element[1], "o", NULL);
	return json != NULL ? payload_parse(json, len, *id) : NULL;
}

typedef struct {
	gpointer store;	      /* (unowned) */
	gchar *conv;	      /* (owned) or the folded nick of a check_nick */
	guint64 known;	      /* conv->known when it was asked */
	CodechatMessage *msg; /* (owned) (nullable) an append's */
	CodechatStoreAppendFunc func;
	CodechatStoreQueryFunc query_func;
	CodechatStoreNickFunc nick_func;
	gpointer user_data;
	gboolean newest;
	guint limit;
	guint64 after;	/* a query's */
	guint64 before; /* a query's, at most delivered + 1 when sent */
	gchar **argv;	/* (owned) an append's, for EVAL after NOSCRIPT */
	gint64 sent_us; /* monotonic: when an append was sent */
} Request;

static void
request_free(Request *req)
{
	g_free(req->conv);
	g_clear_pointer(&req->msg, codechat_message_unref);
	g_strfreev(req->argv);
	g_free(req);
}

static Link *
link_of(const redisAsyncContext *ac)
{
	return ac->data;
}

static void
fetch_gap_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	Request *req = privdata;
	CodechatStoreRedis *self = req->store;
	redisReply *reply = r;
	Conv *conv = g_hash_table_lookup(self->convs, req->conv);
	g_autoptr(GError) error = NULL;
	guint64 gone = 0;
	gboolean complete = FALSE;

	if (conv == NULL) {
		request_free(req);
		return;
	}
	conv->fetching = FALSE;
	if (!reply_ok(reply, &error) || reply->type != REDIS_REPLY_ARRAY) {
		/* the connection is lost: the resync after reconnecting reads it */
		g_debug("cannot read the gap of %s: %s",
			conv->key,
			error != NULL ? error->message : "not an array");
		request_free(req);
		return;
	}
	complete = reply->elements < FETCH_COUNT;
	for (gsize i = 0; i < reply->elements; i++) {
		const gchar *origin = NULL;
		guint64 id = 0;
		g_autoptr(CodechatMessage) msg = entry_parse(reply->element[i], &id, &origin);

		if (msg == NULL) {
			g_warning("a bad entry in %s%s: skipped", KEY_LOG, conv->key);
			continue;
		}
		take_remote(self, conv, id, origin, msg);
		gone = id;
	}
	/* the ids known to exist before the XRANGE ran that it did not
	 * return (within what it read) are gone */
	if (complete)
		gone = req->known;
	else if (gone > req->known)
		gone = req->known;
	/* gone must not pass an own message still waiting for its reply:
	 * those are in early as OWN_COPY, and deliver() stops there */
	request_free(req);
	deliver(self, conv, gone);
	if (!complete && conv->known > conv->delivered)
		fetch_gap(self, conv);
}

static void
fetch_gap(CodechatStoreRedis *self, Conv *conv)
{
	g_autofree gchar *key = g_strconcat(KEY_LOG, conv->key, NULL);
	g_autofree gchar *start = NULL;
	g_autofree gchar *count = g_strdup_printf("%u", FETCH_COUNT);
	const gchar *argv[6];
	Request *req;

	if (conv->fetching || self->cmd.ac == NULL || conv->known <= conv->delivered)
		return;
	start = conv->delivered == 0 ? g_strdup("-")
				     : g_strdup_printf("(0-%" G_GUINT64_FORMAT, conv->delivered);
	argv[0] = "XRANGE";
	argv[1] = key;
	argv[2] = start;
	argv[3] = "+";
	argv[4] = "COUNT";
	argv[5] = count;
	req = g_new0(Request, 1);
	req->store = self;
	req->conv = g_strdup(conv->key);
	req->known = conv->known;
	if (redisAsyncCommandArgv(self->cmd.ac, fetch_gap_cb, req, 6, argv, NULL) != REDIS_OK) {
		request_free(req);
		return;
	}
	conv->fetching = TRUE;
}

/* appending */

static void
append_cb(redisAsyncContext *ac, void *r, void *privdata);

static gboolean
send_append(CodechatStoreRedis *self, Request *req, gboolean eval)
{
	const gchar *argv[12];
	g_autofree gchar *log_key = g_strconcat(KEY_LOG, req->conv, NULL);

	argv[0] = eval ? "EVAL" : "EVALSHA";
	argv[1] = eval ? append_script : self->script_sha;
	argv[2] = "3";
	argv[3] = KEY_LAST;
	argv[4] = log_key;
	argv[5] = KEY_EPOCH;
	argv[6] = req->argv[0]; /* conv */
	argv[7] = self->origin;
	argv[8] = req->argv[1]; /* json */
	argv[9] = req->argv[2]; /* history max */
	argv[10] = self->channel;
	argv[11] = self->epoch;
	return self->cmd.ac != NULL &&
	       redisAsyncCommandArgv(self->cmd.ac, append_cb, req, 12, argv, NULL) == REDIS_OK;
}

static void
append_done(CodechatStoreRedis *self, Conv *conv)
{
	GHashTableIter iter;
	Pending *p;

	g_assert(conv->inflight > 0);
	g_assert(self->n_inflight > 0);
	conv->inflight--;
	self->n_inflight--;
	if (conv->inflight > 0)
		return;
	/* copies of our appends whose replies were lost: theirs to deliver */
	g_hash_table_iter_init(&iter, conv->early);
	while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&p)) {
		if (p->state == PENDING_OWN_COPY)
			p->state = PENDING_REMOTE;
	}
}

static void
append_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	Request *req = privdata;
	CodechatStoreRedis *self = req->store;
	redisReply *reply = r;
	Conv *conv = get_conv(self, req->conv);
	g_autoptr(GError) error = NULL;
	Pending *p;

	if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
	    g_str_has_prefix(reply->str, "NOSCRIPT") && send_append(self, req, TRUE))
		return;
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
	    g_str_has_prefix(reply->str, "EPOCH"))
		note_reset(self, "another or none");
	if (!reply_ok(reply, &error) || reply->type != REDIS_REPLY_INTEGER || reply->integer < 1) {
		if (error == NULL)
			set_unavailable(&error);
		g_debug("append to %s failed: %s", conv->key, error->message);
		append_done(self, conv);
		req->func(req->msg, error, req->user_data);
		request_free(req);
		deliver(self, conv, 0);
		return;
	}
	req->msg->id = (guint64)reply->integer;
	append_done(self, conv);
	if (self->commit_func != NULL)
		self->commit_func((gdouble)(g_get_monotonic_time() - req->sent_us) / G_USEC_PER_SEC,
				  self->commit_data);
	if (req->msg->id <= conv->delivered) {
		/* a Redis restored from older data reuses ids (with
		 * appendfsync everysec, or from a backup); or a tiny
		 * --history-max trimmed it before its reply came.  It is
		 * stored, so it is acknowledged, out of order */
		g_warning("Redis gave id %" G_GUINT64_FORMAT " in %s, not above the last delivered "
			  "(%" G_GUINT64_FORMAT "): was Redis restored from older data?",
			  req->msg->id,
			  conv->key,
			  conv->delivered);
		req->func(req->msg, NULL, req->user_data);
		request_free(req);
		return;
	}
	p = g_new0(Pending, 1);
	p->state = PENDING_OWN;
	p->msg = g_steal_pointer(&req->msg);
	p->func = req->func;
	p->user_data = req->user_data;
	add_early(conv, p->msg->id, p);
	request_free(req);
	deliver(self, conv, 0);
}

static void
redis_append(CodechatStore *store,
	     const gchar *key,
	     CodechatMessage *msg,
	     CodechatStoreAppendFunc func,
	     gpointer user_data)
{
	CodechatStoreRedis *self = CODECHAT_STORE_REDIS(store);
	Conv *conv = get_conv(self, key);
	Request *req;

	if (self->cmd.ac == NULL || self->reset) {
		g_autoptr(GError) error = NULL;
		set_unavailable(&error);
		func(msg, error, user_data);
		return;
	}
	req = g_new0(Request, 1);
	req->store = self;
	req->conv = g_strdup(key);
	req->msg = codechat_message_ref(msg);
	req->func = func;
	req->user_data = user_data;
	req->argv = g_new0(gchar *, 4);
	req->argv[0] = g_strdup(key);
	req->argv[1] = payload_build(msg);
	req->argv[2] = g_strdup_printf("%u", self->history_max);
	req->sent_us = g_get_monotonic_time();
	conv->inflight++;
	self->n_inflight++;
	if (!send_append(self, req, FALSE)) {
		g_autoptr(GError) error = NULL;
		set_unavailable(&error);
		append_done(self, conv);
		func(msg, error, user_data);
		request_free(req);
	}
}

/* querying */

static void
query_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	Request *req = privdata;
	CodechatStoreRedis *self = req->store;
	redisReply *reply = r;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) page =
	    g_ptr_array_new_with_free_func((GDestroyNotify)codechat_message_unref);
	gboolean more = FALSE;

	if (reply == NULL && !self->disposing) {
		/* the link dropped: what the cache holds is still an answer */
		g_autoptr(GPtrArray) cached = NULL;
		if (cache_query(self,
				g_hash_table_lookup(self->convs, req->conv),
				req->after,
				req->before,
				req->limit,
				req->newest,
				&cached,
				&more)) {
			req->query_func(cached, more, NULL, req->user_data);
			request_free(req);
			return;
		}
	}
	if (!reply_ok(reply, &error) || reply->type != REDIS_REPLY_ARRAY) {
		if (error == NULL)
			set_unavailable(&error);
		req->query_func(NULL, FALSE, error, req->user_data);
		request_free(req);
		return;
	}
	for (gsize i = 0; i < reply->elements; i++) {
		guint64 id = 0;
		CodechatMessage *msg;

		if (page->len == req->limit) {
			more = TRUE;
			break;
		}
		msg = entry_parse(reply->element[i], &id, NULL);
		if (msg == NULL) {
			g_warning("a bad entry in %s%s: skipped", KEY_LOG, req->conv);
			continue;
		}
		g_ptr_array_add(page, msg);
	}
	if (req->newest) {
		/* newest first from XREVRANGE, oldest first on the wire */
		for (guint i = 0, j = page->len > 0 ? page->len - 1 : 0; i < j; i++, j--) {
			gpointer tmp = page->pdata[i];
			page->pdata[i] = page->pdata[j];
			page->pdata[j] = tmp;
		}
	}
	req->query_func(page, more, NULL, req->user_data);
	request_free(req);
}

static void
redis_query_async(CodechatStore *store,
		  const gchar *key,
		  guint64 after,
		  guint64 before,
		  guint limit,
		  gboolean newest,
		  CodechatStoreQueryFunc func,
		  gpointer user_data)
{
	CodechatStoreRedis *self = CODECHAT_STORE_REDIS(store);
	Conv *conv = g_hash_table_lookup(self->convs, key);
	guint64 visible = conv != NULL ? conv->delivered : 0;
	g_autofree gchar *log_key = g_strconcat(KEY_LOG, key, NULL);
	g_autofree gchar *low = NULL;
	g_autofree gchar *high = NULL;
	g_autofree gchar *count = NULL;
	const gchar *argv[6];
	Request *req;

	/* what is not yet delivered is not there to read */
	if (before > visible + 1)
		before = visible + 1;
	if (before <= after + 1 || limit == 0) {
		g_autoptr(GPtrArray) page = g_ptr_array_new();
		func(page, FALSE, NULL, user_data);
		return;
	}
	if (self->cmd.ac == NULL) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) cached = NULL;
		gboolean more = FALSE;
		if (cache_query(self, conv, after, before, limit, newest, &cached, &more)) {
			func(cached, more, NULL, user_data);
			return;
		}
		set_unavailable(&error);
		func(NULL, FALSE, error, user_data);
		return;
	}
	low = after == 0 ? g_strdup("-") : g_strdup_printf("(0-%" G_GUINT64_FORMAT, after);
	high = g_strdup_printf("(0-%" G_GUINT64_FORMAT, before);
	count = g_strdup_printf("%" G_GUINT64_FORMAT, (guint64)limit + 1);
	argv[0] = newest ? "XREVRANGE" : "XRANGE";
	argv[1] = log_key;
	argv[2] = newest ? high : low;
	argv[3] = newest ? low : high;
	if (newest && after == 0)
		argv[3] = "-";
	argv[4] = "COUNT";
	argv[5] = count;
	req = g_new0(Request, 1);
	req->store = self;
	req->conv = g_strdup(key);
	req->query_func = func;
	req->user_data = user_data;
	req->newest = newest;
	req->limit = limit;
	req->after = after;
	req->before = before;
	if (redisAsyncCommandArgv(self->cmd.ac, query_cb, req, 6, argv, NULL) != REDIS_OK) {
		g_autoptr(GError) error = NULL;
		set_unavailable(&error);
		request_free(req);
		func(NULL, FALSE, error, user_data);
	}
}

static GPtrArray *
redis_query(CodechatStore *store,
	    const gchar *key,
	    guint64 after,
	    guint64 before,
	    guint limit,
	    gboolean newest,
	    gboolean *more,
	    GError **error)
{
	*more = FALSE;
	g_set_error_literal(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INTERNAL,
			    "the Redis store answers queries asynchronously only");
	return NULL;
}

/* nicks */

static void
nick_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	Request *req = privdata;
	CodechatStoreRedis *self = req->store;
	g_autoptr(GError) error = NULL;

	/* not stored: sent again at the next (re)connection */
	if (!reply_ok(r, &error))
		g_hash_table_add(self->unsent, g_steal_pointer(&req->conv));
	request_free(req);
}

static void
send_nick(CodechatStoreRedis *self, const gchar *fold)
{
	const gchar *argv[] = {"EVAL", nick_script, "1", KEY_NICKS, fold, self->channel};
	Request *req;

	if (self->cmd.ac == NULL) {
		g_hash_table_add(self->unsent, g_strdup(fold));
		return;
	}
	req = g_new0(Request, 1);
	req->store = self;
	req->conv = g_strdup(fold);
	if (redisAsyncCommandArgv(self->cmd.ac, nick_cb, req, G_N_ELEMENTS(argv), argv, NULL) !=
	    REDIS_OK) {
		g_hash_table_add(self->unsent, g_steal_pointer(&req->conv));
		request_free(req);
	}
}

static gboolean
redis_remember_nick(CodechatStore *store, const gchar *nick, GError **error)
{
	CodechatStoreRedis *self = CODECHAT_STORE_REDIS(store);
	g_autofree gchar *fold = codechat_nick_fold(nick);

	if (g_hash_table_contains(self->nicks, fold))
		return TRUE;
	g_hash_table_add(self->nicks, g_strdup(fold));
	send_nick(self, fold);
	return TRUE;
}

static gboolean
redis_knows_nick(CodechatStore *store, const gchar *nick)
{
	CodechatStoreRedis *self = CODECHAT_STORE_REDIS(store);
	g_autofree gchar *fold = codechat_nick_fold(nick);

	return g_hash_table_contains(self->nicks, fold);
}

static void
check_nick_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	Request *req = privdata;
	CodechatStoreRedis *self = req->store;
	redisReply *reply = r;
	g_autoptr(GError) error = NULL;

	if (!reply_ok(reply, &error) || reply->type != REDIS_REPLY_INTEGER) {
		if (error == NULL)
			set_unavailable(&error);
		req->nick_func(FALSE, error, req->user_data);
	} else {
		/* another daemon saw it: its announcement is on the way */
		if (reply->integer == 1)
			g_hash_table_add(self->nicks, g_strdup(req->conv));
		req->nick_func(reply->integer == 1, NULL, req->user_data);
	}
	request_free(req);
}

/* a nick this daemon has not heard of may have connected to another one
 * a moment ago: SISMEMBER tells */
static void
redis_check_nick(CodechatStore *store,
		 const gchar *nick,
		 CodechatStoreNickFunc func,
		 gpointer user_data)
{
	CodechatStoreRedis *self = CODECHAT_STORE_REDIS(store);
	g_autofree gchar *fold = codechat_nick_fold(nick);
	g_autoptr(GError) error = NULL;
	Request *req;

	if (g_hash_table_contains(self->nicks, fold)) {
		func(TRUE, NULL, user_data);
		return;
	}
	if (self->cmd.ac == NULL) {
		set_unavailable(&error);
		func(FALSE, error, user_data);
		return;
	}
	req = g_new0(Request, 1);
	req->store = self;
	req->conv = g_steal_pointer(&fold);
	req->nick_func = func;
	req->user_data = user_data;
	if (redisAsyncCommand(self->cmd.ac,
			      check_nick_cb,
			      req,
			      "SISMEMBER %s %s",
			      KEY_NICKS,
			      req->conv) != REDIS_OK) {
		set_unavailable(&error);
		func(FALSE, error, user_data);
		request_free(req);
	}
}

static const gchar *
redis_get_epoch(CodechatStore *store)
{
	return CODECHAT_STORE_REDIS(store)->epoch;
}

static guint64
redis_get_last_id(CodechatStore *store, const gchar *key)
{
	Conv *conv = g_hash_table_lookup(CODECHAT_STORE_REDIS(store)->convs, key);

	return conv != NULL ? conv->delivered : 0;
}

static GPtrArray *
redis_list_rooms(CodechatStore *store)
{
	CodechatStoreRedis *self = CODECHAT_STORE_REDIS(store);
	GPtrArray *rooms = g_ptr_array_new_with_free_func(g_free);
	GHashTableIter iter;
	const gchar *key;
	Conv *conv;

	g_hash_table_iter_init(&iter, self->convs);
	while (g_hash_table_iter_next(&iter, (gpointer *)&key, (gpointer *)&conv)) {
		if (conv->delivered > 0 && !codechat_store_key_is_direct(key))
			g_ptr_array_add(rooms, g_strdup(key));
	}
	return rooms;
}

static gboolean
has_own_pending(CodechatStoreRedis *self)
{
	GHashTableIter iter;
	Conv *conv;

	if (self->n_inflight > 0)
		return TRUE;
	g_hash_table_iter_init(&iter, self->convs);
	while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&conv)) {
		GHashTableIter inner;
		Pending *p;
		g_hash_table_iter_init(&inner, conv->early);
		while (g_hash_table_iter_next(&inner, NULL, (gpointer *)&p)) {
			if (p->state == PENDING_OWN)
				return TRUE;
		}
	}
	return FALSE;
}

static gboolean
flush_wake_cb(gpointer user_data)
{
	return G_SOURCE_CONTINUE;
}

static gint
compare_ids(gconstpointer a, gconstpointer b)
{
	guint64 x = *(const guint64 *)a;
	guint64 y = *(const guint64 *)b;

	return x < y ? -1 : x > y;
}

/* at the end: our own appends that wait behind a gap that will not fill
 * now are stored, so they are acknowledged, in id order */
static void
answer_own_anyway(CodechatStoreRedis *self)
{
	GHashTableIter iter;
	Conv *conv;

	g_hash_table_iter_init(&iter, self->convs);
	while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&conv)) {
		g_autoptr(GHashTable) early = g_steal_pointer(&conv->early);
		g_autoptr(GList) ids = g_hash_table_get_keys(early);

		conv->early = g_hash_table_new_full(g_int64_hash,
						    g_int64_equal,
						    g_free,
						    (GDestroyNotify)pending_free);
		ids = g_list_sort(ids, compare_ids);
		for (GList *l = ids; l != NULL; l = l->next) {
			Pending *p = g_hash_table_lookup(early, l->data);
			if (p->state == PENDING_OWN)
				p->func(p->msg, NULL, p->user_data);
		}
	}
}

/*
 * Nothing is lost at shutdown that Redis acknowledged; this waits (at most
 * two seconds) for the replies of appends in flight, so that their
 * senders hear of them.
 */
static void
redis_flush(CodechatStore *store)
{
	CodechatStoreRedis *self = CODECHAT_STORE_REDIS(store);
	gint64 deadline = g_get_monotonic_time() + FLUSH_WAIT_US;
	GSource *wake;

	if (!has_own_pending(self))
		return;
	wake = g_timeout_source_new(GAP_MS);
	g_source_set_callback(wake, flush_wake_cb, NULL, NULL);
	g_source_attach(wake, self->context);
	while (has_own_pending(self) && g_get_monotonic_time() < deadline)
		g_main_context_iteration(self->context, TRUE);
	g_source_destroy(wake);
	g_source_unref(wake);
}

/* connections */

static void
schedule_reconnect(CodechatStoreRedis *self);
static void
connect_links(CodechatStoreRedis *self);

static void
source_bury(GSource *source)
{
	g_source_destroy(source);
	g_source_unref(source);
}

static gboolean
bury_cb(gpointer user_data)
{
	CodechatStoreRedis *self = user_data;

	self->bury_id = 0;
	g_ptr_array_set_size(self->graveyard, 0);
	return G_SOURCE_REMOVE;
}

/* from hiredis' callbacks: it still cleans up through the source after
 * they return, so the source goes at the next iteration */
static void
link_drop_source(Link *link)
{
	CodechatStoreRedis *self = link->store;

	if (link->source == NULL)
		return;
	/* the adapter's dispatch reads on after a write that failed: nothing
	 * left for it to do */
	((RedisSource *)link->source)->poll_fd.revents = 0;
	((RedisSource *)link->source)->poll_fd.events = 0;
	g_ptr_array_add(self->graveyard, g_steal_pointer(&link->source));
	if (self->bury_id == 0)
		self->bury_id = add_timeout(self, 0, bury_cb, self);
}

static void
link_close(Link *link)
{
	redisAsyncContext *ac = g_steal_pointer(&link->ac);

	link->connected = FALSE;
	if (ac != NULL)
		redisAsyncFree(ac);
	if (link->source != NULL)
		source_bury(g_steal_pointer(&link->source));
}

/* one of the links is gone: both go, and come back together */
static void
links_lost(CodechatStoreRedis *self, const gchar *reason)
{
	link_close(&self->cmd);
	link_close(&self->sub);
	if (self->disposing)
		return;
	if (!self->lost) {
		self->lost = TRUE;
		g_warning("lost the connection to Redis at %s: %s; reconnecting",
			  self->url,
			  reason);
	}
	schedule_reconnect(self);
}

static void
connect_cb(const redisAsyncContext *ac, int status)
{
	Link *link = link_of(ac);

	if (link->ac != ac)
		return;
	if (status != REDIS_OK) {
		CodechatStoreRedis *self = link->store;
		g_autofree gchar *reason = g_strdup(ac->errstr);
		/* hiredis frees it when this returns */
		link->ac = NULL;
		link_drop_source(link);
		if (self->lost) {
			g_debug("cannot reconnect to Redis at %s: %s", self->url, reason);
			link_close(&self->cmd);
			link_close(&self->sub);
			schedule_reconnect(self);
		} else {
			links_lost(self, reason);
		}
		return;
	}
	link->connected = TRUE;
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
	Link *link = link_of(ac);
	g_autofree gchar *reason = NULL;

	if (link->ac != ac)
		return;
	reason = g_strdup(status == REDIS_OK ? "closed" : ac->errstr);
	/* hiredis frees it when this returns */
	link->ac = NULL;
	link_drop_source(link);
	links_lost(link->store, reason);
}

static gboolean
reconnect_cb(gpointer user_data)
{
	CodechatStoreRedis *self = user_data;

	self->reconnect_id = 0;
	g_debug("connecting to Redis at %s", self->url);
	connect_links(self);
	return G_SOURCE_REMOVE;
}

static void
schedule_reconnect(CodechatStoreRedis *self)
{
	if (self->reconnect_id != 0 || self->disposing)
		return;
	g_debug("reconnecting to Redis in %u ms", self->backoff_ms);
	self->reconnect_id = add_timeout(self, self->backoff_ms, reconnect_cb, self);
	self->backoff_ms = MIN(self->backoff_ms * 2, CODECHAT_STORE_REDIS_BACKOFF_MAX_MS);
}

static gboolean
link_open(CodechatStoreRedis *self, Link *link, gboolean subscriber)
{
	redisAsyncContext *ac;

	ac = self->socket_path != NULL ? redisAsyncConnectUnix(self->socket_path)
				       : redisAsyncConnect(self->host, self->port);
	if (ac == NULL)
		return FALSE;
	if (ac->err != 0) {
		g_debug("cannot connect to Redis at %s: %s", self->url, ac->errstr);
		redisAsyncFree(ac);
		return FALSE;
	}
	link->store = self;
	link->subscriber = subscriber;
	link->connected = FALSE;
	link->ac = ac;
	ac->data = link;
	link->source = redis_source_new(ac);
	g_source_set_name(link->source, subscriber ? "codechat-redis-sub" : "codechat-redis");
	g_source_attach(link->source, self->context);
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
	return TRUE;
}

static void
resync_last_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatStoreRedis *self = privdata;
	redisReply *reply = r;
	GHashTableIter iter;
	Conv *conv;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		return;
	for (gsize i = 0; i + 1 < reply->elements; i += 2) {
		guint64 last = 0;
		if (reply->element[i]->type != REDIS_REPLY_STRING ||
		    reply->element[i + 1]->type != REDIS_REPLY_STRING ||
		    !g_ascii_string_to_unsigned(reply->element[i + 1]->str,
						10,
						0,
						G_MAXUINT64,
						&last,
						NULL))
			continue;
		conv = get_conv(self, reply->element[i]->str);
		if (last > conv->known)
			conv->known = last;
	}
	g_hash_table_iter_init(&iter, self->convs);
	while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&conv))
		fetch_gap(self, conv);
	if (self->lost) {
		self->lost = FALSE;
		g_message("reconnected to Redis at %s", self->url);
	}
	self->backoff_ms = CODECHAT_STORE_REDIS_BACKOFF_MIN_MS;
}

static void
resync_nicks_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatStoreRedis *self = privdata;
	redisReply *reply = r;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		return;
	for (gsize i = 0; i < reply->elements; i++) {
		if (reply->element[i]->type == REDIS_REPLY_STRING)
			g_hash_table_add(self->nicks, g_strdup(reply->element[i]->str));
	}
}

static void
resync_epoch_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatStoreRedis *self = privdata;
	redisReply *reply = r;

	if (reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_STRING || g_strcmp0(reply->str, self->epoch) != 0)
		note_reset(self, reply->type == REDIS_REPLY_STRING ? reply->str : "none");
}

/* subscribed: read what was missed while not */
static void
resync(CodechatStoreRedis *self)
{
	g_autoptr(GList) unsent = NULL;

	if (self->cmd.ac == NULL)
		return;
	redisAsyncCommand(self->cmd.ac, resync_epoch_cb, self, "GET %s", KEY_EPOCH);
	unsent = g_hash_table_get_keys(self->unsent);
	for (GList *l = unsent; l != NULL; l = l->next) {
		g_autofree gchar *fold = NULL;
		g_hash_table_steal_extended(self->unsent, l->data, (gpointer *)&fold, NULL);
		send_nick(self, fold);
	}
	redisAsyncCommand(self->cmd.ac, resync_nicks_cb, self, "SMEMBERS %s", KEY_NICKS);
	redisAsyncCommand(self->cmd.ac, resync_last_cb, self, "HGETALL %s", KEY_LAST);
}

/* "m\nCONV\nID\nORIGIN\nJSON" or "n\nFOLD" */
static void
take_published(CodechatStoreRedis *self, const gchar *payload, gsize len)
{
	g_auto(GStrv) parts = NULL;
	g_autoptr(CodechatMessage) msg = NULL;
	guint64 id = 0;
	Conv *conv;

	if (len < 2 || payload[1] != '\n')
		return;
	if (payload[0] == 'n') {
		g_hash_table_add(self->nicks, g_strndup(payload + 2, len - 2));
		return;
	}
	if (payload[0] != 'm')
		return;
	parts = g_strsplit(payload + 2, "\n", 4);
	if (g_strv_length(parts) != 4 ||
	    !g_ascii_string_to_unsigned(parts[1], 10, 1, G_MAXUINT64, &id, NULL)) {
		g_warning("a bad message on %s: ignored", self->channel);
		return;
	}
	conv = get_conv(self, parts[0]);
	if (id <= conv->delivered)
		return;
	msg = payload_parse(parts[3], strlen(parts[3]), id);
	if (msg == NULL) {
		g_warning("a bad message on %s: ignored", self->channel);
		return;
	}
	take_remote(self, conv, id, parts[2], msg);
	deliver(self, conv, 0);
}

static void
subscribe_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatStoreRedis *self = privdata;
	redisReply *reply = r;
	redisReply *kind;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
		return;
	kind = reply->element[0];
	if (kind->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(kind->str, "subscribe") == 0)
		resync(self);
	else if (strcmp(kind->str, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING)
		take_published(self, reply->element[2]->str, (gsize)reply->element[2]->len);
}

static void
select_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatStoreRedis *self = privdata;
	g_autoptr(GError) error = NULL;

	if (r != NULL && !reply_ok(r, &error) && self->cmd.ac == ac) {
		g_warning("Redis at %s: %s", self->url, error->message);
		redisAsyncDisconnect(ac);
	}
}

static void
connect_links(CodechatStoreRedis *self)
{
	if (!link_open(self, &self->cmd, FALSE) || !link_open(self, &self->sub, TRUE)) {
		link_close(&self->cmd);
		link_close(&self->sub);
		schedule_reconnect(self);
		return;
	}
	/* queued until connected, sent in order; the name tells the
	 * connections of this daemon in CLIENT LIST */
	redisAsyncCommand(self->cmd.ac, NULL, NULL, "CLIENT SETNAME codechat-%s", self->origin);
	redisAsyncCommand(self->sub.ac, NULL, NULL, "CLIENT SETNAME codechat-%s", self->origin);
	if (self->db != 0)
		redisAsyncCommand(self->cmd.ac, select_cb, self, "SELECT %d", self->db);
	redisAsyncCommand(self->cmd.ac, NULL, NULL, "SCRIPT LOAD %s", append_script);
	redisAsyncCommand(self->sub.ac, subscribe_cb, self, "SUBSCRIBE %s", self->channel);
}

gboolean
codechat_store_redis_is_connected(CodechatStoreRedis *self)
{
	g_return_val_if_fail(CODECHAT_IS_STORE_REDIS(self), FALSE);
	return self->cmd.connected && self->sub.connected && !self->lost;
}

static void
codechat_store_redis_iface_init(CodechatStoreInterface *iface)
{
	iface->get_epoch = redis_get_epoch;
	iface->get_last_id = redis_get_last_id;
	iface->append = redis_append;
	iface->query = redis_query;
	iface->query_async = redis_query_async;
	iface->remember_nick = redis_remember_nick;
	iface->knows_nick = redis_knows_nick;
	iface->check_nick = redis_check_nick;
	iface->list_rooms = redis_list_rooms;
	iface->flush = redis_flush;
}

/* starting */

/**
 * codechat_store_redis_parse_url:
 * @host: (out) (transfer full) (nullable): for redis://
 * @socket_path: (out) (transfer full) (nullable): for unix://
 *
 * redis://HOST[:PORT][/DB] (port 6379, database 0 by default) or
 * unix:///PATH[?db=DB].
 */
gboolean
codechat_store_redis_parse_url(const gchar *url,
			       gchar **host,
			       gint *port,
			       gchar **socket_path,
			       gint *db,
			       GError **error)
{
	g_autoptr(GUri) uri = NULL;
	g_autoptr(GError) error_local = NULL;
	const gchar *scheme;
	const gchar *path;
	const gchar *query;
	guint64 number = 0;

	*host = NULL;
	*socket_path = NULL;
	*port = 6379;
	*db = 0;
	uri = g_uri_parse(url, G_URI_FLAGS_NONE, &error_local);
	if (uri == NULL) {
		g_set_error(error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_BAD_VALUE,
			    _("--redis: “%s” is not a redis:// or unix:// URL: %s"),
			    url,
			    error_local->message);
		return FALSE;
	}
	scheme = g_uri_get_scheme(uri);
	path = g_uri_get_path(uri);
	query = g_uri_get_query(uri);
	if (g_ascii_strcasecmp(scheme, "redis") == 0 && g_uri_get_host(uri) != NULL &&
	    g_uri_get_host(uri)[0] != '\0' && g_uri_get_userinfo(uri) == NULL && query == NULL) {
		if (g_uri_get_port(uri) > 0)
			*port = g_uri_get_port(uri);
		if (path[0] != '\0' && strcmp(path, "/") != 0) {
			if (!g_ascii_string_to_unsigned(path + 1, 10, 0, G_MAXINT, &number, NULL))
				goto bad;
			*db = (gint)number;
		}
		*host = g_strdup(g_uri_get_host(uri));
		return TRUE;
	}
	if (g_ascii_strcasecmp(scheme, "unix") == 0 && path[0] == '/' &&
	    (g_uri_get_host(uri) == NULL || g_uri_get_host(uri)[0] == '\0')) {
		if (query != NULL) {
			if (!g_str_has_prefix(query, "db=") ||
			    !g_ascii_string_to_unsigned(query + 3, 10, 0, G_MAXINT, &number, NULL))
				goto bad;
			*db = (gint)number;
		}
		*socket_path = g_strdup(path);
		return TRUE;
	}
bad:
	g_set_error(error,
		    G_OPTION_ERROR,
		    G_OPTION_ERROR_BAD_VALUE,
		    _("--redis: “%s” is not redis://HOST[:PORT][/DB] or unix:///PATH[?db=DB]"),
		    url);
	return FALSE;
}

static redisReply *
command(redisContext *c, GError **error, const gchar *what, gint argc, const gchar **argv)
{
	redisReply *reply = redisCommandArgv(c, argc, argv, NULL);

	if (reply == NULL) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", what, c->errstr);
		return NULL;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", what, reply->str);
		freeReplyObject(reply);
		return NULL;
	}
	return reply;
}

/* the one blocking step, before the daemon serves */
static gboolean
load(CodechatStoreRedis *self, redisContext *c, GError **error)
{
	g_autofree gchar *epoch = g_strdup_printf("%08x%08x", g_random_int(), g_random_int());
	g_autofree gchar *db = g_strdup_printf("%d", self->db);
	const gchar *select[] = {"SELECT", db};
	const gchar *set_epoch[] = {"SET", KEY_EPOCH, epoch, "NX"};
	const gchar *get_epoch[] = {"GET", KEY_EPOCH};
	const gchar *script_load[] = {"SCRIPT", "LOAD", append_script};
	const gchar *hgetall[] = {"HGETALL", KEY_LAST};
	const gchar *smembers[] = {"SMEMBERS", KEY_NICKS};
	redisReply *reply;

	if (self->db != 0) {
		if ((reply = command(c, error, "SELECT", 2, select)) == NULL)
			return FALSE;
		freeReplyObject(reply);
	}
	if ((reply = command(c, error, "SET", 4, set_epoch)) == NULL)
		return FALSE;
	freeReplyObject(reply);
	if ((reply = command(c, error, "GET", 2, get_epoch)) == NULL)
		return FALSE;
	if (reply->type == REDIS_REPLY_STRING)
		self->epoch = g_strdup(reply->str);
	freeReplyObject(reply);
	if (self->epoch == NULL) {
		g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED, "no epoch");
		return FALSE;
	}
	if ((reply = command(c, error, "SCRIPT LOAD", 3, script_load)) == NULL)
		return FALSE;
	if (reply->type == REDIS_REPLY_STRING)
		self->script_sha = g_strdup(reply->str);
	freeReplyObject(reply);
	if (self->script_sha == NULL)
		self->script_sha =
		    g_compute_checksum_for_string(G_CHECKSUM_SHA1, append_script, -1);
	if ((reply = command(c, error, "HGETALL", 2, hgetall)) == NULL)
		return FALSE;
	for (gsize i = 0; reply->type == REDIS_REPLY_ARRAY && i + 1 < reply->elements; i += 2) {
		guint64 last = 0;
		Conv *conv;
		if (!g_ascii_string_to_unsigned(reply->element[i + 1]->str,
						10,
						0,
						G_MAXUINT64,
						&last,
						NULL))
			continue;
		conv = get_conv(self, reply->element[i]->str);
		conv->delivered = conv->known = last;
	}
	freeReplyObject(reply);
	if ((reply = command(c, error, "SMEMBERS", 2, smembers)) == NULL)
		return FALSE;
	for (gsize i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++)
		g_hash_table_add(self->nicks, g_strdup(reply->element[i]->str));
	freeReplyObject(reply);
	return TRUE;
}

/**
 * codechat_store_redis_new:
 * @url: redis://HOST[:PORT][/DB] or unix:///PATH[?db=DB]
 * @history_max: messages kept per conversation, at least; 0 for all
 *
 * Connects (blocking, once), reads the epoch (making it if this is the
 * first daemon), the last ids and the nicks, then runs on the main
 * context of the caller.  An unreachable Redis is an error: the daemon
 * exits, and its supervisor starts it again.
 */
CodechatStore *
codechat_store_redis_new(const gchar *url, guint history_max, GError **error)
{
	g_autoptr(CodechatStoreRedis) self = g_object_new(CODECHAT_TYPE_STORE_REDIS, NULL);
	g_autoptr(GError) error_local = NULL;
	struct timeval timeout = {CONNECT_S, 0};
	redisContext *c;
	gboolean ok;

	g_return_val_if_fail(url != NULL, NULL);
	if (!codechat_store_redis_parse_url(url,
					    &self->host,
					    &self->port,
					    &self->socket_path,
					    &self->db,
					    error))
		return NULL;
	self->url = g_strdup(url);
	self->history_max = history_max;
	self->channel = g_strdup_printf(PREFIX "messages:%d", self->db);
	c = self->socket_path != NULL ? redisConnectUnixWithTimeout(self->socket_path, timeout)
				      : redisConnectWithTimeout(self->host, self->port, timeout);
	if (c == NULL || c->err != 0) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_CONNECTION_REFUSED,
			    _("cannot connect to Redis at %s: %s"),
			    url,
			    c != NULL ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, timeout);
	ok = load(self, c, &error_local);
	redisFree(c);
	if (!ok) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot connect to Redis at %s: %s"),
			    url,
			    error_local->message);
		return NULL;
	}
	connect_links(self);
	g_info("history in Redis at %s (epoch %s, %u conversations, %u nicks)",
	       url,
	       self->epoch,
	       g_hash_table_size(self->convs),
	       g_hash_table_size(self->nicks));
	return CODECHAT_STORE(g_steal_pointer(&self));
}

static void
codechat_store_redis_dispose(GObject *object)
{
	CodechatStoreRedis *self = CODECHAT_STORE_REDIS(object);

	if (!self->disposing) {
		self->disposing = TRUE;
		remove_timeout(self, &self->reconnect_id);
		remove_timeout(self, &self->bury_id);
		/* appends in flight fail, then what was answered is answered */
		link_close(&self->cmd);
		link_close(&self->sub);
		answer_own_anyway(self);
	}
	G_OBJECT_CLASS(codechat_store_redis_parent_class)->dispose(object);
}

static void
codechat_store_redis_finalize(GObject *object)
{
	CodechatStoreRedis *self = CODECHAT_STORE_REDIS(object);

	if (self->commit_notify != NULL)
		self->commit_notify(self->commit_data);
	/* the links first: conv_free() does not touch them */
	g_queue_clear(&self->cache_lru);
	g_hash_table_unref(self->convs);
	g_hash_table_unref(self->nicks);
	g_hash_table_unref(self->unsent);
	g_ptr_array_unref(self->graveyard);
	g_main_context_unref(self->context);
	g_free(self->url);
	g_free(self->host);
	g_free(self->socket_path);
	g_free(self->epoch);
	g_free(self->origin);
	g_free(self->channel);
	g_free(self->script_sha);
	G_OBJECT_CLASS(codechat_store_redis_parent_class)->finalize(object);
}

static void
codechat_store_redis_class_init(CodechatStoreRedisClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = codechat_store_redis_dispose;
	object_class->finalize = codechat_store_redis_finalize;
}

static void
codechat_store_redis_init(CodechatStoreRedis *self)
{
	self->convs =
	    g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)conv_free);
	self->nicks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	self->unsent = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	self->context = g_main_context_ref_thread_default();
	self->origin = g_strdup_printf("%08x%08x", g_random_int(), g_random_int());
	self->cache_max = CACHE_TOTAL;
	if (g_getenv("CODECHATD_TEST_CACHE_TOTAL") != NULL)
		self->cache_max =
		    MAX(1,
			(guint)g_ascii_strtoull(g_getenv("CODECHATD_TEST_CACHE_TOTAL"), NULL, 10));
	self->backoff_ms = CODECHAT_STORE_REDIS_BACKOFF_MIN_MS;
	self->graveyard = g_ptr_array_new_with_free_func((GDestroyNotify)source_bury);
}

/**
 * codechat_store_redis_set_commit_func:
 *
 * @func is called on the main context with the time from sending each
 * append to Redis's answer that kept it: what codechat_store_commit_seconds
 * measures for this store.
 */
void
codechat_store_redis_set_commit_func(CodechatStoreRedis *self,
				     CodechatStoreCommitFunc func,
				     gpointer user_data,
				     GDestroyNotify notify)
{
	g_return_if_fail(CODECHAT_IS_STORE_REDIS(self));
	if (self->commit_notify != NULL)
		self->commit_notify(self->commit_data);
	self->commit_func = func;
	self->commit_data = user_data;
	self->commit_notify = notify;
}
