/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include "codechat-store.h"

G_DEFINE_INTERFACE(CodechatStore, codechat_store, G_TYPE_OBJECT)

enum {
	SIGNAL_REMOTE_MESSAGE,
	N_SIGNALS
};
static guint signals[N_SIGNALS] = {0};

static void
codechat_store_default_init(CodechatStoreInterface *iface)
{
	/**
	 * CodechatStore::remote-message:
	 * @conv: the conversation: a room name or a codechat_store_direct_key()
	 * @msg: (type gpointer): the CodechatMessage, with its id
	 *
	 * A message that another daemon appended to a shared store.  For a
	 * conversation it is emitted in id order, and in order with the
	 * callbacks of this daemon's own appends.  A store of one daemon
	 * never emits it.
	 */
	signals[SIGNAL_REMOTE_MESSAGE] = g_signal_new("remote-message",
						      G_TYPE_FROM_INTERFACE(iface),
						      G_SIGNAL_RUN_LAST,
						      0,
						      NULL,
						      NULL,
						      NULL,
						      G_TYPE_NONE,
						      2,
						      G_TYPE_STRING,
						      G_TYPE_POINTER);
}

const gchar *
codechat_store_get_epoch(CodechatStore *self)
{
	g_return_val_if_fail(CODECHAT_IS_STORE(self), NULL);
	return CODECHAT_STORE_GET_IFACE(self)->get_epoch(self);
}

guint64
codechat_store_get_last_id(CodechatStore *self, const gchar *conv)
{
	g_return_val_if_fail(CODECHAT_IS_STORE(self), 0);
	return CODECHAT_STORE_GET_IFACE(self)->get_last_id(self, conv);
}

/**
 * codechat_store_append:
 *
 * Assigns @msg the next id of @conv and keeps it; @func runs once the
 * message is kept, or with an error, in the order of the appends.  It may
 * run before this function returns.
 */
void
codechat_store_append(CodechatStore *self,
		      const gchar *conv,
		      CodechatMessage *msg,
		      CodechatStoreAppendFunc func,
		      gpointer user_data)
{
	g_return_if_fail(CODECHAT_IS_STORE(self));
	CODECHAT_STORE_GET_IFACE(self)->append(self, conv, msg, func, user_data);
}

/**
 * codechat_store_query:
 * @after: only ids above this one (0: from the start)
 * @before: only ids below this one (%CODECHAT_STORE_NO_BOUND: to the end)
 * @newest: take the @limit newest messages of the range, else the oldest
 * @more: (out): whether the range holds messages beyond the page in the
 *   direction asked (older ones for @newest, newer ones otherwise)
 *
 * Returns: (transfer container) (element-type CodechatMessage): the
 * page, oldest first
 */
GPtrArray *
codechat_store_query(CodechatStore *self,
		     const gchar *conv,
		     guint64 after,
		     guint64 before,
		     guint limit,
		     gboolean newest,
		     gboolean *more,
		     GError **error)
{
	g_return_val_if_fail(CODECHAT_IS_STORE(self), NULL);
	return CODECHAT_STORE_GET_IFACE(self)
	    ->query(self, conv, after, before, limit, newest, more, error);
}

/**
 * codechat_store_query_async:
 * @func: called once with the page (oldest first) and @more as for
 *   codechat_store_query(), or with an error
 *
 * The same query as codechat_store_query(), for stores that cannot
 * answer without waiting (a network store).  A store that only has the
 * synchronous query answers through it, and @func then runs before this
 * function returns: callers must cope with both.
 */
void
codechat_store_query_async(CodechatStore *self,
			   const gchar *conv,
			   guint64 after,
			   guint64 before,
			   guint limit,
			   gboolean newest,
			   CodechatStoreQueryFunc func,
			   gpointer user_data)
{
	CodechatStoreInterface *iface;
	g_autoptr(GPtrArray) page = NULL;
	g_autoptr(GError) error = NULL;
	gboolean more = FALSE;

	g_return_if_fail(CODECHAT_IS_STORE(self));
	g_return_if_fail(func != NULL);
	iface = CODECHAT_STORE_GET_IFACE(self);
	if (iface->query_async != NULL) {
		iface->query_async(self, conv, after, before, limit, newest, func, user_data);
		return;
	}
	page = iface->query(self, conv, after, before, limit, newest, &more, &error);
	if (page == NULL && error == NULL)
		error = g_error_new_literal(CODECHAT_ERROR,
					    CODECHAT_ERROR_INTERNAL,
					    "the store gave no page");
	func(page, page != NULL ? more : FALSE, error, user_data);
}

/**
 * codechat_store_emit_remote_message:
 *
 * For implementations: emits #CodechatStore::remote-message.
 */
void
codechat_store_emit_remote_message(CodechatStore *self, const gchar *conv, CodechatMessage *msg)
{
	g_return_if_fail(CODECHAT_IS_STORE(self));
	g_return_if_fail(conv != NULL);
	g_return_if_fail(msg != NULL);
	g_signal_emit(self, signals[SIGNAL_REMOTE_MESSAGE], 0, conv, msg);
}

gboolean
codechat_store_remember_nick(CodechatStore *self, const gchar *nick, GError **error)
{
	g_return_val_if_fail(CODECHAT_IS_STORE(self), FALSE);
	return CODECHAT_STORE_GET_IFACE(self)->remember_nick(self, nick, error);
}

gboolean
codechat_store_knows_nick(CodechatStore *self, const gchar *nick)
{
	g_return_val_if_fail(CODECHAT_IS_STORE(self), FALSE);
	return CODECHAT_STORE_GET_IFACE(self)->knows_nick(self, nick);
}

/**
 * codechat_store_can_check_nick:
 *
 * Whether codechat_store_knows_nick() may say no for a nick that is known
 * after all: a store shared by several daemons learns of the nicks seen by
 * the others a moment later.  Such a store checks with
 * codechat_store_check_nick() before a nick is called unknown.
 */
gboolean
codechat_store_can_check_nick(CodechatStore *self)
{
	g_return_val_if_fail(CODECHAT_IS_STORE(self), FALSE);
	return CODECHAT_STORE_GET_IFACE(self)->check_nick != NULL;
}

/**
 * codechat_store_check_nick:
 * @func: called once with the answer, before this returns for a store
 *   without check_nick
 *
 * Asks the store itself whether @nick ever connected; a nick found this
 * way is known to codechat_store_knows_nick() from then on.
 */
void
codechat_store_check_nick(CodechatStore *self,
			  const gchar *nick,
			  CodechatStoreNickFunc func,
			  gpointer user_data)
{
	CodechatStoreInterface *iface;

	g_return_if_fail(CODECHAT_IS_STORE(self));
	g_return_if_fail(nick != NULL);
	iface = CODECHAT_STORE_GET_IFACE(self);
	if (iface->check_nick != NULL)
		iface->check_nick(self, nick, func, user_data);
	else
		func(iface->knows_nick(self, nick), NULL, user_data);
}

/**
 * codechat_store_list_rooms:
 *
 * Returns: (transfer container) (element-type utf8): the rooms that have
 * messages, owned by the array
 */
GPtrArray *
codechat_store_list_rooms(CodechatStore *self)
{
	g_return_val_if_fail(CODECHAT_IS_STORE(self), NULL);
	return CODECHAT_STORE_GET_IFACE(self)->list_rooms(self);
}

/**
 * codechat_store_flush:
 *
 * Waits until every append so far is kept or failed and its callback has
 * run.  For shutdown: after it no callback is left pending.
 */
void
codechat_store_flush(CodechatStore *self)
{
	g_return_if_fail(CODECHAT_IS_STORE(self));
	if (CODECHAT_STORE_GET_IFACE(self)->flush != NULL)
		CODECHAT_STORE_GET_IFACE(self)->flush(self);
}

/**
 * codechat_store_direct_key:
 *
 * The conversation of two nicks, the same whichever of them asks; the
 * ':' keeps it apart from every room name.
 */
#define DIRECT_PREFIX "dm:"

gchar *
codechat_store_direct_key(const gchar *nick_a, const gchar *nick_b)
{
	g_autofree gchar *a = codechat_nick_fold(nick_a);
	g_autofree gchar *b = codechat_nick_fold(nick_b);

	if (g_strcmp0(a, b) > 0)
		return g_strdup_printf(DIRECT_PREFIX "%s:%s", b, a);
	return g_strdup_printf(DIRECT_PREFIX "%s:%s", a, b);
}

/* whether @key is a direct conversation's, not a room's (list_rooms) */
gboolean
codechat_store_key_is_direct(const gchar *key)
{
	return g_str_has_prefix(key, DIRECT_PREFIX);
}
