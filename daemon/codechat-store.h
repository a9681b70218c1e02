/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

#include "codechat-protocol.h"

G_BEGIN_DECLS

/*
 * The history store: the only module that keeps messages.  The hub hands
 * it each message once; the store assigns the id and calls back when the
 * message is kept (for a durable store: committed), and only then does
 * the hub fan it out and acknowledge it.  A conversation is a room name,
 * or for direct messages the key from codechat_store_direct_key().
 */
#define CODECHAT_TYPE_STORE (codechat_store_get_type())
G_DECLARE_INTERFACE(CodechatStore, codechat_store, CODECHAT, STORE, GObject)

/* @msg has its id set on success; @error is set on failure */
typedef void (*CodechatStoreAppendFunc)(CodechatMessage *msg,
					const GError *error,
					gpointer user_data);

/* @messages: (element-type CodechatMessage) (transfer none): oldest first; NULL on error */
typedef void (*CodechatStoreQueryFunc)(GPtrArray *messages,
				       gboolean more,
				       const GError *error,
				       gpointer user_data);

/* @known: whether the nick ever connected; @error: set when the store
 * could not tell */
typedef void (*CodechatStoreNickFunc)(gboolean known, const GError *error, gpointer user_data);

struct _CodechatStoreInterface {
	GTypeInterface parent_iface;

	const gchar *(*get_epoch)(CodechatStore *self);
	guint64 (*get_last_id)(CodechatStore *self, const gchar *conv);
	void (*append)(CodechatStore *self,
		       const gchar *conv,
		       CodechatMessage *msg,
		       CodechatStoreAppendFunc func,
		       gpointer user_data);
	GPtrArray *(*query)(CodechatStore *self,
			    const gchar *conv,
			    guint64 after,
			    guint64 before,
			    guint limit,
			    gboolean newest,
			    gboolean *more,
			    GError **error);
	void (*query_async)(CodechatStore *self,
			    const gchar *conv,
			    guint64 after,
			    guint64 before,
			    guint limit,
			    gboolean newest,
			    CodechatStoreQueryFunc func,
			    gpointer user_data);
	gboolean (*remember_nick)(CodechatStore *self, const gchar *nick, GError **error);
	gboolean (*knows_nick)(CodechatStore *self, const gchar *nick);
	void (*check_nick)(CodechatStore *self,
			   const gchar *nick,
			   CodechatStoreNickFunc func,
			   gpointer user_data);
	GPtrArray *(*list_rooms)(CodechatStore *self);
	void (*flush)(CodechatStore *self);
};

/* no upper bound for codechat_store_query()'s @before */
#define CODECHAT_STORE_NO_BOUND G_MAXUINT64

const gchar *
codechat_store_get_epoch(CodechatStore *self);
guint64
codechat_store_get_last_id(CodechatStore *self, const gchar *conv);
void
codechat_store_append(CodechatStore *self,
		      const gchar *conv,
		      CodechatMessage *msg,
		      CodechatStoreAppendFunc func,
		      gpointer user_data);
GPtrArray *
codechat_store_query(CodechatStore *self,
		     const gchar *conv,
		     guint64 after,
		     guint64 before,
		     guint limit,
		     gboolean newest,
		     gboolean *more,
		     GError **error);
void
codechat_store_query_async(CodechatStore *self,
			   const gchar *conv,
			   guint64 after,
			   guint64 before,
			   guint limit,
			   gboolean newest,
			   CodechatStoreQueryFunc func,
			   gpointer user_data);
/* emits "remote-message" (conv, msg): a message another daemon appended */
void
codechat_store_emit_remote_message(CodechatStore *self, const gchar *conv, CodechatMessage *msg);
gboolean
codechat_store_remember_nick(CodechatStore *self, const gchar *nick, GError **error);
gboolean
codechat_store_knows_nick(CodechatStore *self, const gchar *nick);
gboolean
codechat_store_can_check_nick(CodechatStore *self);
void
codechat_store_check_nick(CodechatStore *self,
			  const gchar *nick,
			  CodechatStoreNickFunc func,
			  gpointer user_data);
GPtrArray *
codechat_store_list_rooms(CodechatStore *self);
void
codechat_store_flush(CodechatStore *self);
gchar *
codechat_store_direct_key(const gchar *nick_a, const gchar *nick_b);
gboolean
codechat_store_key_is_direct(const gchar *key);

/* the in-memory store, until the durable one lands */
#define CODECHAT_TYPE_STORE_MEMORY (codechat_store_memory_get_type())
G_DECLARE_FINAL_TYPE(CodechatStoreMemory, codechat_store_memory, CODECHAT, STORE_MEMORY, GObject)

CodechatStore *
codechat_store_memory_new(void);

/* the durable store: one SQLite database in a data directory */
#define CODECHAT_TYPE_STORE_SQLITE (codechat_store_sqlite_get_type())
G_DECLARE_FINAL_TYPE(CodechatStoreSqlite, codechat_store_sqlite, CODECHAT, STORE_SQLITE, GObject)

typedef enum {
	CODECHAT_STORE_SYNC_FULL,   /* fsync at every commit: survives a machine crash */
	CODECHAT_STORE_SYNC_NORMAL, /* survives a crash of the process, not of the machine */
} CodechatStoreSync;

#define CODECHAT_STORE_DB_NAME "codechat.db"

CodechatStore *
codechat_store_sqlite_new(const gchar *data_dir, CodechatStoreSync sync, GError **error);

typedef void (*CodechatStoreCommitFunc)(gdouble seconds, gpointer user_data);

void
codechat_store_sqlite_set_commit_func(CodechatStoreSqlite *self,
				      CodechatStoreCommitFunc func,
				      gpointer user_data,
				      GDestroyNotify notify);
void
codechat_store_sqlite_set_history_max(CodechatStoreSqlite *self, guint history_max);

G_END_DECLS
