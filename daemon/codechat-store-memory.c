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
};

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
		if (!g_str_has_prefix(key, "dm:"))
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
codechat_store_memory_class_init(CodechatStoreMemoryClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	object_class->finalize = codechat_store_memory_finalize;
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
