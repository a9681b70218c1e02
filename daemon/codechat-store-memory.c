/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include "codechat-store.h"

typedef struct {
	GPtrArray *msgs; /* (owned) (element-type CodechatMessage) by id */
	guint64 last_id;
} Conversation;

struct _CodechatStoreMemory {
	GObject parent_instance;
	GHashTable *convs; /* (owned) conv key -> Conversation */
	GHashTable *nicks; /* (owned) folded nick set */
	gchar *epoch;	   /* (owned) */
	guint query_delay_ms;
	gboolean query_at_call;
};

enum {
	PROP_0,
	PROP_QUERY_DELAY_MS,
	PROP_QUERY_AT_CALL,
	N_PROPS
};
static GParamSpec *properties[N_PROPS];

static void
codechat_store_memory_iface_init(CodechatStoreInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE(CodechatStoreMemory,
			      codechat_store_memory,
			      G_TYPE_OBJECT,
			      G_IMPLEMENT_INTERFACE(CODECHAT_TYPE_STORE,
						    codechat_store_memory_iface_init))

static void
conversation_free(Conversation *conv)
{
	g_ptr_array_unref(conv->msgs);
	g_free(conv);
}

static const gchar *
memory_get_epoch(CodechatStore *store)
{
	return CODECHAT_STORE_MEMORY(store)->epoch;
}

static guint64
memory_get_last_id(CodechatStore *store, const gchar *key)
{
	Conversation *conv = g_hash_table_lookup(CODECHAT_STORE_MEMORY(store)->convs, key);
	return conv != NULL ? conv->last_id : 0;
}

static void
memory_append(CodechatStore *store,
	      const gchar *key,
	      CodechatMessage *msg,
	      CodechatStoreAppendFunc func,
	      gpointer user_data)
{
	CodechatStoreMemory *self = CODECHAT_STORE_MEMORY(store);
	Conversation *conv = g_hash_table_lookup(self->convs, key);

	if (conv == NULL) {
		conv = g_new0(Conversation, 1);
		conv->msgs = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_message_unref);
		g_hash_table_insert(self->convs, g_strdup(key), conv);
	}
	msg->id = ++conv->last_id;
	g_ptr_array_add(conv->msgs, codechat_message_ref(msg));
	func(msg, NULL, user_data);
}

/* index of the first message whose id is above @id */
static guint
upper_bound(GPtrArray *msgs, guint64 id)
{
	guint lo = 0, hi = msgs->len;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		CodechatMessage *msg = g_ptr_array_index(msgs, mid);
		if (msg->id <= id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static GPtrArray *
memory_query(CodechatStore *store,
	     const gchar *key,
	     guint64 after,
	     guint64 before,
	     guint limit,
	     gboolean newest,
	     gboolean *more,
	     GError **error)
{
	CodechatStoreMemory *self = CODECHAT_STORE_MEMORY(store);
	Conversation *conv = g_hash_table_lookup(self->convs, key);
	GPtrArray *page = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_message_unref);
	guint first, end;

	*more = FALSE;
	if (conv == NULL || before <= after + 1)
		return page;
	/* [first, end) holds the ids in (after, before) */
	first = upper_bound(conv->msgs, after);
	end = before == CODECHAT_STORE_NO_BOUND ? conv->msgs->len
						: upper_bound(conv->msgs, before - 1);
	if (end - first > limit) {
		*more = TRUE;
		if (newest)
			first = end - limit;
		else
			end = first + limit;
	}
	for (guint i = first; i < end; i++)
		g_ptr_array_add(page, codechat_message_ref(g_ptr_array_index(conv->msgs, i)));
	return page;
}

/*
 * For tests of the callers only: with query-delay-ms set, an asynchronous
 * query answers from a timeout, like a store over the network, so that
 * tests see what happens while a query is in flight.  The page is read
 * when the answer comes, or with query-at-call when the query is made
 * (then messages appended meanwhile are missing from it, as from a
 * network store's snapshot).
 */
typedef struct {
	CodechatStoreMemory *store; /* (owned) */
	gchar *key;		    /* (owned) */
	guint64 after;
	guint64 before;
	guint limit;
	gboolean newest;
	GPtrArray *page; /* (owned) (nullable) read at the call */
	gboolean more;
	CodechatStoreQueryFunc func;
	gpointer user_data;
} DelayedQuery;

static gboolean
delayed_query_cb(gpointer user_data)
{
	DelayedQuery *q = user_data;
	g_autoptr(GPtrArray) page = g_steal_pointer(&q->page);
	gboolean more = q->more;

	if (page == NULL)
		page = memory_query(CODECHAT_STORE(q->store),
				    q->key,
				    q->after,
				    q->before,
				    q->limit,
				    q->newest,
				    &more,
				    NULL);
	q->func(page, more, NULL, q->user_data);
	g_object_unref(q->store);
	g_free(q->key);
	g_free(q);
	return G_SOURCE_REMOVE;
}

static void
memory_query_async(CodechatStore *store,
		   const gchar *key,
		   guint64 after,
		   guint64 before,
		   guint limit,
		   gboolean newest,
		   CodechatStoreQueryFunc func,
		   gpointer user_data)
{
	CodechatStoreMemory *self = CODECHAT_STORE_MEMORY(store);
	DelayedQuery *q;

	if (self->query_delay_ms == 0) {
		gboolean more = FALSE;
		g_autoptr(GPtrArray) page =
		    memory_query(store, key, after, before, limit, newest, &more, NULL);
		func(page, more, NULL, user_data);
		return;
	}
	q = g_new0(DelayedQuery, 1);
	q->store = g_object_ref(self);
	q->key = g_strdup(key);
	q->after = after;
	q->before = before;
	q->limit = limit;
	q->newest = newest;
	q->func = func;
	q->user_data = user_data;
	if (self->query_at_call)
		q->page = memory_query(store, key, after, before, limit, newest, &q->more, NULL);
	g_timeout_add(self->query_delay_ms, delayed_query_cb, q);
}

static gboolean
memory_remember_nick(CodechatStore *store, const gchar *nick, GError **error)
{
	CodechatStoreMemory *self = CODECHAT_STORE_MEMORY(store);
	g_hash_table_add(self->nicks, codechat_nick_fold(nick));
	return TRUE;
}

static gboolean
memory_knows_nick(CodechatStore *store, const gchar *nick)
{
	CodechatStoreMemory *self = CODECHAT_STORE_MEMORY(store);
	g_autofree gchar *fold = codechat_nick_fold(nick);
	return g_hash_table_contains(self->nicks, fold);
}

static GPtrArray *
memory_list_rooms(CodechatStore *store)
{
	CodechatStoreMemory *self = CODECHAT_STORE_MEMORY(store);
	GPtrArray *rooms = g_ptr_array_new_with_free_func(g_free);
	GHashTableIter iter;
	const gchar *key;

	g_hash_table_iter_init(&iter, self->convs);
	while (g_hash_table_iter_next(&iter, (gpointer *)&key, NULL)) {
		if (!codechat_store_key_is_direct(key))
			g_ptr_array_add(rooms, g_strdup(key));
	}
	return rooms;
}

static void
codechat_store_memory_iface_init(CodechatStoreInterface *iface)
{
	iface->get_epoch = memory_get_epoch;
	iface->get_last_id = memory_get_last_id;
	iface->append = memory_append;
	iface->query = memory_query;
	iface->query_async = memory_query_async;
	iface->remember_nick = memory_remember_nick;
	iface->knows_nick = memory_knows_nick;
	iface->list_rooms = memory_list_rooms;
}

static void
codechat_store_memory_finalize(GObject *object)
{
	CodechatStoreMemory *self = CODECHAT_STORE_MEMORY(object);

	g_hash_table_unref(self->convs);
	g_hash_table_unref(self->nicks);
	g_free(self->epoch);
	G_OBJECT_CLASS(codechat_store_memory_parent_class)->finalize(object);
}

static void
codechat_store_memory_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
	CodechatStoreMemory *self = CODECHAT_STORE_MEMORY(object);

	switch (prop_id) {
	case PROP_QUERY_DELAY_MS:
		g_value_set_uint(value, self->query_delay_ms);
		break;
	case PROP_QUERY_AT_CALL:
		g_value_set_boolean(value, self->query_at_call);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_store_memory_set_property(GObject *object,
				   guint prop_id,
				   const GValue *value,
				   GParamSpec *pspec)
{
	CodechatStoreMemory *self = CODECHAT_STORE_MEMORY(object);

	switch (prop_id) {
	case PROP_QUERY_DELAY_MS:
		self->query_delay_ms = g_value_get_uint(value);
		break;
	case PROP_QUERY_AT_CALL:
		self->query_at_call = g_value_get_boolean(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_store_memory_class_init(CodechatStoreMemoryClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->finalize = codechat_store_memory_finalize;
	object_class->get_property = codechat_store_memory_get_property;
	object_class->set_property = codechat_store_memory_set_property;

	/* test-only: milliseconds before an asynchronous query answers */
	properties[PROP_QUERY_DELAY_MS] =
	    g_param_spec_uint("query-delay-ms",
			      NULL,
			      NULL,
			      0,
			      G_MAXUINT,
			      0,
			      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
	/* test-only: a delayed query reads its page when made, not when answered */
	properties[PROP_QUERY_AT_CALL] = g_param_spec_boolean(
	    "query-at-call",
	    NULL,
	    NULL,
	    FALSE,
	    G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
	g_object_class_install_properties(object_class, N_PROPS, properties);
}

static void
codechat_store_memory_init(CodechatStoreMemory *self)
{
	self->convs = g_hash_table_new_full(g_str_hash,
					    g_str_equal,
					    g_free,
					    (GDestroyNotify)conversation_free);
	self->nicks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	/* a memory store is new with every process, and so is its epoch */
	self->epoch = g_strdup_printf("%08x%08x", g_random_int(), g_random_int());
}

CodechatStore *
codechat_store_memory_new(void)
{
	return CODECHAT_STORE(g_object_new(CODECHAT_TYPE_STORE_MEMORY, NULL));
}
