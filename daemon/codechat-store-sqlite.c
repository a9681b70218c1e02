/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "codechat-store.h"

/*
 * The durable store.  Ids are assigned on the main thread, in the order
 * of the appends; a writer thread takes everything appended since its
 * last transaction and commits it as one (group commit: while one batch
 * is being synced, the next one gathers).  Results go back to the main
 * context in order, and only then does a message become visible to
 * queries, so that a reader never sees a message before it was broadcast.
 * This file is the only one that speaks SQL.
 */

#define SCHEMA_VERSION 1

/* forward migrations: entry N takes a database from version N to N + 1 */
static const gchar *const migrations[] = {
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE messages ("
    "  conv TEXT NOT NULL,"
    "  id INTEGER NOT NULL,"
    "  room TEXT,"
    "  recipient TEXT,"
    "  sender TEXT NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  text TEXT NOT NULL,"
    "  lang TEXT,"
    "  filename TEXT,"
    "  PRIMARY KEY (conv, id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE nicks (fold TEXT PRIMARY KEY, nick TEXT NOT NULL, first_seen INTEGER NOT NULL);",
};
G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == SCHEMA_VERSION);

typedef enum {
	OP_MESSAGE,
	OP_NICK,
} OpType;

typedef struct {
	OpType type;
	gchar *conv;	      /* (owned) (nullable) OP_MESSAGE */
	CodechatMessage *msg; /* (owned) (nullable) OP_MESSAGE */
	CodechatStoreAppendFunc func;
	gpointer user_data;
	gchar *nick;   /* (owned) (nullable) OP_NICK */
	GError *error; /* (owned) (nullable) set when this op was not stored */
} Op;

typedef struct {
	GPtrArray *ops;	  /* (owned) (element-type Op) */
	gint64 commit_us; /* its transaction, BEGIN to COMMIT done; -1 if it failed */
} Batch;

typedef struct {
	guint64 next_id;    /* the last id handed out */
	guint64 visible_id; /* the last id whose callback ran */
} Conv;

struct _CodechatStoreSqlite {
	GObject parent_instance;
	gchar *path;		      /* (owned) */
	gchar *epoch;		      /* (owned) */
	sqlite3 *reader;	      /* (owned) main thread only */
	sqlite3 *writer;	      /* (owned) the writer thread only, once it runs */
	sqlite3_stmt *insert_message; /* (owned) writer */
	sqlite3_stmt *insert_nick;    /* (owned) writer */
	sqlite3_stmt *delete_old;     /* (owned) writer */
	guint history_max;	      /* (atomic) messages kept per conversation, 0: all */
	sqlite3_stmt *query_newest;   /* (owned) reader */
	sqlite3_stmt *query_oldest;   /* (owned) reader */
	GHashTable *convs;	      /* (owned) main thread: key -> Conv */
	GHashTable *nicks;	      /* (owned) main thread: folded nick set */
	GMainContext *context;	      /* (owned) where callbacks run */
	int lock_fd;		      /* DIR/codechat.lock, flock()ed while open; -1 if none */
	GThread *thread;	      /* (owned) (nullable) the writer */
	gboolean sync_full;	      /* an fsync at every commit of a message */

	/*
	 * Ops appended during one main loop iteration are handed to the
	 * writer together at the next one: one lock and at most one wake-up
	 * for all of them (GLib's GCond makes a syscall for every
	 * broadcast, waiter or not).
	 */
	GPtrArray *local;	    /* (owned) main thread: appended, not handed over yet */
	GSource *handoff;	    /* (owned) (nullable) hands them over */
	gint64 local_since;	    /* monotonic time the first of them came */
	gboolean local_has_message; /* else only nick records, which can wait */

	GMutex lock;
	GCond cond;
	GPtrArray *pending;	 /* (owned) (lock) ops the writer has not taken */
	gboolean writer_waiting; /* (lock) the writer waits for ops */
	guint n_flushing;	 /* (lock) main-thread waits for the writer */
	GQueue done;		 /* (lock) Batch, written and not dispatched */
	gboolean busy;		 /* (lock) the writer is in a transaction */
	gboolean quit;		 /* (lock) */
	GSource *dispatch;	 /* (owned) (lock) (nullable) queued to run dispatch_done() */

	CodechatStoreCommitFunc commit_func; /* main thread, (nullable) */
	gpointer commit_data;		     /* (owned) by commit_notify */
	GDestroyNotify commit_notify;	     /* (nullable) */
};

static void
codechat_store_sqlite_iface_init(CodechatStoreInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE(CodechatStoreSqlite,
			      codechat_store_sqlite,
			      G_TYPE_OBJECT,
			      G_IMPLEMENT_INTERFACE(CODECHAT_TYPE_STORE,
						    codechat_store_sqlite_iface_init))

static void
op_free(Op *op)
{
	g_free(op->conv);
	g_clear_pointer(&op->msg, codechat_message_unref);
	g_free(op->nick);
	g_clear_error(&op->error);
	g_free(op);
}

static void
batch_free(Batch *batch)
{
	g_ptr_array_unref(batch->ops);
	g_free(batch);
}

static gboolean
set_sqlite_error(GError **error, sqlite3 *db, const gchar *path, const gchar *what)
{
	g_set_error(error,
		    G_IO_ERROR,
		    sqlite3_errcode(db) == SQLITE_FULL ? G_IO_ERROR_NO_SPACE : G_IO_ERROR_FAILED,
		    "%s: %s: %s",
		    path,
		    what,
		    sqlite3_errmsg(db));
	return FALSE;
}

static gboolean
exec(sqlite3 *db, const gchar *path, const gchar *sql, GError **error)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return set_sqlite_error(error, db, path, sql);
	return TRUE;
}

/* the writer thread */

static gboolean
write_ops_in_transaction(CodechatStoreSqlite *self, GPtrArray *ops, GError **error);

static gboolean
write_ops(CodechatStoreSqlite *self, GPtrArray *ops, GError **error)
{
	gboolean ok;
	gboolean defer_sync = self->sync_full;

	/*
	 * Nick records are not acknowledged to anyone (hello does not wait
	 * for them), so a transaction of nothing else is committed without
	 * an fsync of its own: the next message's fsync of the WAL makes it
	 * durable with it.  A connection storm of new nicks then costs no
	 * disk flush per main loop iteration.
	 */
	for (guint i = 0; i < ops->len && defer_sync; i++) {
		if (((Op *)g_ptr_array_index(ops, i))->type == OP_MESSAGE)
			defer_sync = FALSE;
	}
	if (defer_sync)
		sqlite3_exec(self->writer, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	ok = write_ops_in_transaction(self, ops, error);
	if (defer_sync)
		sqlite3_exec(self->writer, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
	return ok;
}

/*
 * --history-max: the messages of a conversation beyond the last N go in
 * the transaction that added to it, one range delete on the primary key
 * per conversation of the batch, so that trimming costs no sync of its
 * own.
 */
static gboolean
trim(CodechatStoreSqlite *self, GPtrArray *ops, GError **error)
{
	guint max = g_atomic_int_get(&self->history_max);
	g_autoptr(GHashTable) last = NULL;
	GHashTableIter iter;
	const gchar *conv;
	gpointer id;

	if (max == 0)
		return TRUE;
	last = g_hash_table_new(g_str_hash, g_str_equal);
	for (guint i = 0; i < ops->len; i++) {
		Op *op = g_ptr_array_index(ops, i);
		if (op->type == OP_MESSAGE &&
		    GPOINTER_TO_SIZE(g_hash_table_lookup(last, op->conv)) < op->msg->id)
			g_hash_table_insert(last, op->conv, GSIZE_TO_POINTER(op->msg->id));
	}
	g_hash_table_iter_init(&iter, last);
	while (g_hash_table_iter_next(&iter, (gpointer *)&conv, &id)) {
		guint64 newest = GPOINTER_TO_SIZE(id);
		int rc;

		if (newest <= max)
			continue;
		sqlite3_bind_text(self->delete_old, 1, conv, -1, SQLITE_STATIC);
		sqlite3_bind_int64(self->delete_old, 2, (sqlite3_int64)(newest - max));
		rc = sqlite3_step(self->delete_old);
		sqlite3_reset(self->delete_old);
		sqlite3_clear_bindings(self->delete_old);
		if (rc != SQLITE_DONE)
			return set_sqlite_error(error, self->writer, self->path, "cannot trim");
	}
	return TRUE;
}

static gboolean
write_ops_in_transaction(CodechatStoreSqlite *self, GPtrArray *ops, GError **error)
{
	if (!exec(self->writer, self->path, "BEGIN IMMEDIATE", error))
		return FALSE;
	for (guint i = 0; i < ops->len; i++) {
		Op *op = g_ptr_array_index(ops, i);
		sqlite3_stmt *stmt;

		if (op->type == OP_MESSAGE) {
			CodechatMessage *msg = op->msg;
			stmt = self->insert_message;
			sqlite3_bind_text(stmt, 1, op->conv, -1, SQLITE_STATIC);
			sqlite3_bind_int64(stmt, 2, (sqlite3_int64)msg->id);
			sqlite3_bind_text(stmt, 3, msg->room, -1, SQLITE_STATIC);
			sqlite3_bind_text(stmt, 4, msg->to, -1, SQLITE_STATIC);
			sqlite3_bind_text(stmt, 5, msg->from, -1, SQLITE_STATIC);
			sqlite3_bind_int64(stmt, 6, msg->ts);
			sqlite3_bind_int(stmt, 7, (int)msg->kind);
			sqlite3_bind_text(stmt, 8, msg->text, -1, SQLITE_STATIC);
			sqlite3_bind_text(stmt, 9, msg->lang, -1, SQLITE_STATIC);
			sqlite3_bind_text(stmt, 10, msg->filename, -1, SQLITE_STATIC);
		} else {
			g_autofree gchar *fold = codechat_nick_fold(op->nick);
			stmt = self->insert_nick;
			sqlite3_bind_text(stmt, 1, fold, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(stmt, 2, op->nick, -1, SQLITE_STATIC);
			sqlite3_bind_int64(stmt, 3, g_get_real_time());
		}
		if (sqlite3_step(stmt) != SQLITE_DONE) {
			set_sqlite_error(error, self->writer, self->path, "cannot store");
			sqlite3_reset(stmt);
			sqlite3_clear_bindings(stmt);
			sqlite3_exec(self->writer, "ROLLBACK", NULL, NULL, NULL);
			return FALSE;
		}
		sqlite3_reset(stmt);
		sqlite3_clear_bindings(stmt);
	}
	if (!trim(self, ops, error)) {
		sqlite3_exec(self->writer, "ROLLBACK", NULL, NULL, NULL);
		return FALSE;
	}
	if (sqlite3_exec(self->writer, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		set_sqlite_error(error, self->writer, self->path, "cannot commit");
		sqlite3_exec(self->writer, "ROLLBACK", NULL, NULL, NULL);
		return FALSE;
	}
	return TRUE;
}

static gboolean
dispatch_cb(gpointer user_data);

/*
 * One transaction for the whole batch; if it fails (a full disk, a message
 * too big for what is left), each op gets a transaction of its own, so
 * that one op that does not fit does not fail the others with it, and a
 * new nick is not lost with a message it was batched with.
 */
static void
write_batch(CodechatStoreSqlite *self, Batch *batch)
{
	g_autoptr(GError) error = NULL;
	GPtrArray *ops = batch->ops;
	gint64 begin_us = g_get_monotonic_time();

	/* the one-op retries below are not timed: they would tell about
	 * the failure, not about the group commit */
	batch->commit_us = -1;
	if (write_ops(self, ops, &error)) {
		batch->commit_us = g_get_monotonic_time() - begin_us;
		return;
	}
	g_warning("%s", error->message);
	if (ops->len == 1) {
		Op *op = g_ptr_array_index(ops, 0);
		op->error = g_steal_pointer(&error);
		return;
	}
	for (guint i = 0; i < ops->len; i++) {
		Op *op = g_ptr_array_index(ops, i);
		g_autoptr(GPtrArray) one = g_ptr_array_new();
		g_ptr_array_add(one, op);
		write_ops(self, one, &op->error);
	}
}

static gpointer
writer_main(gpointer user_data)
{
	CodechatStoreSqlite *self = user_data;

	g_mutex_lock(&self->lock);
	for (;;) {
		g_autoptr(GPtrArray) ops = NULL;
		Batch *batch;

		while (self->pending->len == 0 && !self->quit) {
			self->writer_waiting = TRUE;
			g_cond_wait(&self->cond, &self->lock);
			self->writer_waiting = FALSE;
		}
		if (self->pending->len == 0)
			break;
		ops = g_steal_pointer(&self->pending);
		self->pending = g_ptr_array_new_with_free_func((GDestroyNotify)op_free);
		self->busy = TRUE;
		g_mutex_unlock(&self->lock);

		batch = g_new0(Batch, 1);
		batch->ops = g_steal_pointer(&ops);
		write_batch(self, batch);

		g_mutex_lock(&self->lock);
		self->busy = FALSE;
		g_queue_push_tail(&self->done, batch);
		/* the source holds no reference: dispose() runs what is left */
		if (self->dispatch == NULL && !self->quit) {
			self->dispatch = g_idle_source_new();
			g_source_set_priority(self->dispatch, G_PRIORITY_DEFAULT);
			g_source_set_callback(self->dispatch, dispatch_cb, self, NULL);
			g_source_set_name(self->dispatch, "codechat-store-dispatch");
			g_source_attach(self->dispatch, self->context);
		}
		if (self->n_flushing > 0)
			g_cond_broadcast(&self->cond);
	}
	g_mutex_unlock(&self->lock);
	return NULL;
}

/* the main thread */

static void
dispatch_done(CodechatStoreSqlite *self, gboolean from_source)
{
	GQueue done = G_QUEUE_INIT;
	GSource *source;
	Batch *batch;

	g_mutex_lock(&self->lock);
	done = self->done;
	g_queue_init(&self->done);
	source = g_steal_pointer(&self->dispatch);
	g_mutex_unlock(&self->lock);
	if (source != NULL) {
		if (!from_source)
			g_source_destroy(source);
		g_source_unref(source);
	}

	while ((batch = g_queue_pop_head(&done)) != NULL) {
		if (batch->commit_us >= 0 && self->commit_func != NULL)
			self->commit_func((gdouble)batch->commit_us / G_USEC_PER_SEC,
					  self->commit_data);
		for (guint i = 0; i < batch->ops->len; i++) {
			Op *op = g_ptr_array_index(batch->ops, i);
			if (op->type == OP_NICK && op->error != NULL) {
				/* not stored: known again only once it is */
				g_autofree gchar *fold = codechat_nick_fold(op->nick);
				g_hash_table_remove(self->nicks, fold);
				continue;
			}
			if (op->type != OP_MESSAGE)
				continue;
			if (op->error == NULL) {
				Conv *conv = g_hash_table_lookup(self->convs, op->conv);
				if (conv != NULL && op->msg->id > conv->visible_id)
					conv->visible_id = op->msg->id;
			}
			op->func(op->msg, op->error, op->user_data);
		}
		batch_free(batch);
	}
}

static gboolean
dispatch_cb(gpointer user_data)
{
	dispatch_done(CODECHAT_STORE_SQLITE(user_data), TRUE);
	return G_SOURCE_REMOVE;
}

static void
handoff(CodechatStoreSqlite *self)
{
	gboolean wake;

	if (self->local->len == 0)
		return;
	g_mutex_lock(&self->lock);
	g_ptr_array_extend_and_steal(self->pending, g_steal_pointer(&self->local));
	self->local = g_ptr_array_new_with_free_func((GDestroyNotify)op_free);
	self->local_has_message = FALSE;
	wake = self->writer_waiting;
	if (wake)
		g_cond_broadcast(&self->cond);
	g_mutex_unlock(&self->lock);
}

typedef struct {
	GSource source;
	CodechatStoreSqlite *store; /* (unowned) destroys the source first */
} HandoffSource;

/*
 * Nobody waits for a nick record (hello is answered at once, and
 * knows_nick() answers from memory), so nick records alone wait this long
 * to be written together: a storm of new connections then costs a
 * transaction every tenth of a second, not one per main loop iteration.
 * A message takes them along at once.
 */
#define NICK_DELAY_US (100 * 1000)

static gboolean
handoff_prepare(GSource *source, gint *timeout)
{
	CodechatStoreSqlite *self = ((HandoffSource *)source)->store;
	gint64 left;

	*timeout = -1;
	if (self->local->len == 0)
		return FALSE;
	if (self->local_has_message)
		return TRUE;
	left = self->local_since + NICK_DELAY_US - g_get_monotonic_time();
	if (left <= 0)
		return TRUE;
	*timeout = (gint)((left + 999) / 1000);
	return FALSE;
}

static gboolean
handoff_check(GSource *source)
{
	gint timeout;

	return handoff_prepare(source, &timeout);
}

static gboolean
handoff_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	handoff(((HandoffSource *)source)->store);
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs handoff_funcs = {
    handoff_prepare,
    handoff_check,
    handoff_dispatch,
    NULL,
    NULL,
    NULL,
};

static void
queue_op(CodechatStoreSqlite *self, Op *op)
{
	if (self->local->len == 0)
		self->local_since = g_get_monotonic_time();
	if (op->type == OP_MESSAGE)
		self->local_has_message = TRUE;
	g_ptr_array_add(self->local, op);
}

static const gchar *
sqlite_get_epoch(CodechatStore *store)
{
	return CODECHAT_STORE_SQLITE(store)->epoch;
}

static guint64
sqlite_get_last_id(CodechatStore *store, const gchar *key)
{
	Conv *conv = g_hash_table_lookup(CODECHAT_STORE_SQLITE(store)->convs, key);
	return conv != NULL ? conv->visible_id : 0;
}

static void
sqlite_append(CodechatStore *store,
	      const gchar *key,
	      CodechatMessage *msg,
	      CodechatStoreAppendFunc func,
	      gpointer user_data)
{
	CodechatStoreSqlite *self = CODECHAT_STORE_SQLITE(store);
	Conv *conv = g_hash_table_lookup(self->convs, key);
	Op *op;

	if (conv == NULL) {
		conv = g_new0(Conv, 1);
		g_hash_table_insert(self->convs, g_strdup(key), conv);
	}
	msg->id = ++conv->next_id;
	op = g_new0(Op, 1);
	op->type = OP_MESSAGE;
	op->conv = g_strdup(key);
	op->msg = codechat_message_ref(msg);
	op->func = func;
	op->user_data = user_data;
	queue_op(self, op);
}

static gchar *
column_dup(sqlite3_stmt *stmt, int col)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);
	return text != NULL ? g_strdup((const gchar *)text) : NULL;
}

static GPtrArray *
sqlite_query(CodechatStore *store,
	     const gchar *key,
	     guint64 after,
	     guint64 before,
	     guint limit,
	     gboolean newest,
	     gboolean *more,
	     GError **error)
{
	CodechatStoreSqlite *self = CODECHAT_STORE_SQLITE(store);
	g_autoptr(GPtrArray) page =
	    g_ptr_array_new_with_free_func((GDestroyNotify)codechat_message_unref);
	sqlite3_stmt *stmt = newest ? self->query_newest : self->query_oldest;
	guint64 visible = sqlite_get_last_id(store, key);
	int rc;

	*more = FALSE;
	/* what is not yet acknowledged is not there to read */
	if (before > visible + 1)
		before = visible + 1;
	if (before <= after + 1 || limit == 0)
		return g_steal_pointer(&page);

	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)after);
	sqlite3_bind_int64(stmt, 3, (sqlite3_int64)before);
	sqlite3_bind_int64(stmt, 4, (sqlite3_int64)limit + 1);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		CodechatMessage *msg;
		if (page->len == limit) {
			*more = TRUE;
			continue;
		}
		msg = codechat_message_new();
		msg->room = column_dup(stmt, 0);
		msg->to = column_dup(stmt, 1);
		msg->from = column_dup(stmt, 2);
		msg->id = (guint64)sqlite3_column_int64(stmt, 3);
		msg->ts = sqlite3_column_int64(stmt, 4);
		msg->kind = (CodechatKind)sqlite3_column_int(stmt, 5);
		msg->text = column_dup(stmt, 6);
		msg->lang = column_dup(stmt, 7);
		msg->filename = column_dup(stmt, 8);
		g_ptr_array_add(page, msg);
	}
	if (rc != SQLITE_DONE) {
		set_sqlite_error(error, self->reader, self->path, "cannot read history");
		sqlite3_reset(stmt);
		sqlite3_clear_bindings(stmt);
		return NULL;
	}
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	if (newest) {
		/* newest first from SQL, oldest first on the wire */
		for (guint i = 0, j = page->len > 0 ? page->len - 1 : 0; i < j; i++, j--) {
			gpointer tmp = page->pdata[i];
			page->pdata[i] = page->pdata[j];
			page->pdata[j] = tmp;
		}
	}
	return g_steal_pointer(&page);
}

static gboolean
sqlite_remember_nick(CodechatStore *store, const gchar *nick, GError **error)
{
	CodechatStoreSqlite *self = CODECHAT_STORE_SQLITE(store);
	g_autofree gchar *fold = codechat_nick_fold(nick);
	Op *op;

	if (g_hash_table_contains(self->nicks, fold))
		return TRUE;
	g_hash_table_add(self->nicks, g_steal_pointer(&fold));
	op = g_new0(Op, 1);
	op->type = OP_NICK;
	op->nick = g_strdup(nick);
	queue_op(self, op);
	return TRUE;
}

static gboolean
sqlite_knows_nick(CodechatStore *store, const gchar *nick)
{
	CodechatStoreSqlite *self = CODECHAT_STORE_SQLITE(store);
	g_autofree gchar *fold = codechat_nick_fold(nick);
	return g_hash_table_contains(self->nicks, fold);
}

static GPtrArray *
sqlite_list_rooms(CodechatStore *store)
{
	CodechatStoreSqlite *self = CODECHAT_STORE_SQLITE(store);
	GPtrArray *rooms = g_ptr_array_new_with_free_func(g_free);
	GHashTableIter iter;
	const gchar *key;
	Conv *conv;

	g_hash_table_iter_init(&iter, self->convs);
	while (g_hash_table_iter_next(&iter, (gpointer *)&key, (gpointer *)&conv)) {
		if (conv->visible_id > 0 && !codechat_store_key_is_direct(key))
			g_ptr_array_add(rooms, g_strdup(key));
	}
	return rooms;
}

static void
sqlite_flush(CodechatStore *store)
{
	CodechatStoreSqlite *self = CODECHAT_STORE_SQLITE(store);

	/* a callback may append again: flush until nothing is left */
	for (;;) {
		gboolean idle;

		handoff(self);
		g_mutex_lock(&self->lock);
		self->n_flushing++;
		while (self->thread != NULL && (self->pending->len > 0 || self->busy))
			g_cond_wait(&self->cond, &self->lock);
		self->n_flushing--;
		g_mutex_unlock(&self->lock);
		dispatch_done(self, FALSE);

		g_mutex_lock(&self->lock);
		idle = self->pending->len == 0 && !self->busy && g_queue_is_empty(&self->done) &&
		       self->local->len == 0;
		g_mutex_unlock(&self->lock);
		if (idle || self->thread == NULL)
			break;
	}
}

static void
codechat_store_sqlite_iface_init(CodechatStoreInterface *iface)
{
	iface->get_epoch = sqlite_get_epoch;
	iface->get_last_id = sqlite_get_last_id;
	iface->append = sqlite_append;
	iface->query = sqlite_query;
	iface->remember_nick = sqlite_remember_nick;
	iface->knows_nick = sqlite_knows_nick;
	iface->list_rooms = sqlite_list_rooms;
	iface->flush = sqlite_flush;
}

/* opening */

static gboolean
prepare(sqlite3 *db, const gchar *path, const gchar *sql, sqlite3_stmt **stmt, GError **error)
{
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL) != SQLITE_OK)
		return set_sqlite_error(error, db, path, "cannot prepare a statement");
	return TRUE;
}

static gboolean
query_int(sqlite3 *db, const gchar *path, const gchar *sql, gint64 *out, GError **error)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return set_sqlite_error(error, db, path, sql);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return set_sqlite_error(error, db, path, sql);
	return TRUE;
}

static gboolean
open_db(const gchar *path, gboolean create, sqlite3 **out, GError **error)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot open database %s: %s"),
			    path,
			    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return FALSE;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_extended_result_codes(db, 0);
	*out = db;
	return TRUE;
}

static gboolean
migrate(CodechatStoreSqlite *self, GError **error)
{
	gint64 version = 0;

	if (!query_int(self->writer, self->path, "PRAGMA user_version", &version, error))
		return FALSE;
	if (version > SCHEMA_VERSION) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_NOT_SUPPORTED,
			    _("%s has schema version %lld, newer than this codechatd knows (%d): "
			      "use a newer codechatd"),
			    self->path,
			    (long long)version,
			    SCHEMA_VERSION);
		return FALSE;
	}
	if (!exec(self->writer, self->path, "BEGIN IMMEDIATE", error))
		return FALSE;
	for (gint64 v = version; v < SCHEMA_VERSION; v++) {
		g_autofree gchar *bump =
		    g_strdup_printf("PRAGMA user_version = %" G_GINT64_FORMAT, v + 1);
		g_info("%s: schema version %" G_GINT64_FORMAT " -> %" G_GINT64_FORMAT,
		       self->path,
		       v,
		       v + 1);
		if (!exec(self->writer, self->path, migrations[v], error) ||
		    !exec(self->writer, self->path, bump, error)) {
			sqlite3_exec(self->writer, "ROLLBACK", NULL, NULL, NULL);
			return FALSE;
		}
	}
	/* the epoch names this database: made once, when it is created */
	{
		g_autofree gchar *epoch =
		    g_strdup_printf("%08x%08x", g_random_int(), g_random_int());
		g_autofree gchar *now = g_strdup_printf("%" G_GINT64_FORMAT, g_get_real_time());
		sqlite3_stmt *stmt = NULL;
		gboolean ok =
		    prepare(self->writer,
			    self->path,
			    "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?1)",
			    &stmt,
			    error);
		if (ok) {
			sqlite3_bind_text(stmt, 1, epoch, -1, SQLITE_STATIC);
			if (sqlite3_step(stmt) != SQLITE_DONE)
				ok = set_sqlite_error(error,
						      self->writer,
						      self->path,
						      "cannot write");
			sqlite3_finalize(stmt);
			stmt = NULL;
		}
		/* also proves at start that the database takes writes */
		if (ok)
			ok = prepare(
			    self->writer,
			    self->path,
			    "INSERT OR REPLACE INTO meta (key, value) VALUES ('started', ?1)",
			    &stmt,
			    error);
		if (ok) {
			sqlite3_bind_text(stmt, 1, now, -1, SQLITE_STATIC);
			if (sqlite3_step(stmt) != SQLITE_DONE)
				ok = set_sqlite_error(error,
						      self->writer,
						      self->path,
						      "cannot write");
			sqlite3_finalize(stmt);
		}
		if (!ok) {
			sqlite3_exec(self->writer, "ROLLBACK", NULL, NULL, NULL);
			return FALSE;
		}
	}
	return exec(self->writer, self->path, "COMMIT", error);
}

static gboolean
load(CodechatStoreSqlite *self, GError **error)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	if (!prepare(self->reader,
		     self->path,
		     "SELECT value FROM meta WHERE key = 'epoch'",
		     &stmt,
		     error))
		return FALSE;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		self->epoch = column_dup(stmt, 0);
	sqlite3_finalize(stmt);
	if (self->epoch == NULL) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, _("%s has no epoch"), self->path);
		return FALSE;
	}

	if (!prepare(self->reader,
		     self->path,
		     "SELECT conv, MAX(id) FROM messages GROUP BY conv",
		     &stmt,
		     error))
		return FALSE;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		Conv *conv = g_new0(Conv, 1);
		conv->next_id = conv->visible_id = (guint64)sqlite3_column_int64(stmt, 1);
		g_hash_table_insert(self->convs, column_dup(stmt, 0), conv);
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
		return set_sqlite_error(error, self->reader, self->path, "cannot read");

	if (!prepare(self->reader, self->path, "SELECT fold FROM nicks", &stmt, error))
		return FALSE;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		g_hash_table_add(self->nicks, column_dup(stmt, 0));
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
		return set_sqlite_error(error, self->reader, self->path, "cannot read");
	return TRUE;
}

static gboolean
open_store(CodechatStoreSqlite *self, const gchar *data_dir, CodechatStoreSync sync, GError **error)
{
	g_autofree gchar *journal = NULL;
	g_autoptr(GError) error_local = NULL;

	if (g_mkdir_with_parents(data_dir, 0700) != 0) {
		int saved = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(saved),
			    _("cannot create data dir %s: %s"),
			    data_dir,
			    g_strerror(saved));
		return FALSE;
	}
	if (g_access(data_dir, W_OK | X_OK) != 0) {
		int saved = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(saved),
			    _("cannot write to data dir %s: %s"),
			    data_dir,
			    g_strerror(saved));
		return FALSE;
	}
	/* one daemon per data dir: two would hand out the same ids */
	{
		g_autofree gchar *lock_path = g_build_filename(data_dir, "codechat.lock", NULL);
		self->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (self->lock_fd < 0) {
			int saved = errno;
			g_set_error(error,
				    G_IO_ERROR,
				    g_io_error_from_errno(saved),
				    _("cannot create %s: %s"),
				    lock_path,
				    g_strerror(saved));
			return FALSE;
		}
		if (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
			int saved = errno;
			g_set_error(
			    error,
			    G_IO_ERROR,
			    saved == EWOULDBLOCK ? G_IO_ERROR_BUSY : g_io_error_from_errno(saved),
			    saved == EWOULDBLOCK ? _("data dir %s is in use by another codechatd")
						 : _("cannot lock data dir %s: %s"),
			    data_dir,
			    g_strerror(saved));
			return FALSE;
		}
	}
	self->path = g_build_filename(data_dir, CODECHAT_STORE_DB_NAME, NULL);
	if (g_file_test(self->path, G_FILE_TEST_IS_DIR)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_IS_DIRECTORY,
			    _("%s is a directory, not a database"),
			    self->path);
		return FALSE;
	}
	if (!open_db(self->path, TRUE, &self->writer, error))
		return FALSE;
	/* history is private; SQLite gives the -wal and -shm files the same mode */
	if (g_chmod(self->path, 0600) != 0)
		g_debug("cannot chmod %s: %s", self->path, g_strerror(errno));

	/* the first statements that read the file: a file that is not a
	 * database, or a damaged one, fails here with a clear message */
	{
		sqlite3_stmt *stmt = NULL;
		if (sqlite3_prepare_v2(self->writer,
				       "PRAGMA journal_mode = WAL",
				       -1,
				       &stmt,
				       NULL) != SQLITE_OK ||
		    sqlite3_step(stmt) != SQLITE_ROW) {
			g_set_error(error,
				    G_IO_ERROR,
				    G_IO_ERROR_INVALID_DATA,
				    _("%s is not a usable codechat database: %s"),
				    self->path,
				    sqlite3_errmsg(self->writer));
			sqlite3_finalize(stmt);
			return FALSE;
		}
		journal = column_dup(stmt, 0);
		sqlite3_finalize(stmt);
	}
	if (g_strcmp0(journal, "wal") != 0) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_READ_ONLY,
			    _("cannot put %s in WAL mode (journal mode is %s): is it read-only?"),
			    self->path,
			    journal);
		return FALSE;
	}
	self->sync_full = sync == CODECHAT_STORE_SYNC_FULL;
	if (!exec(self->writer,
		  self->path,
		  sync == CODECHAT_STORE_SYNC_FULL ? "PRAGMA synchronous = FULL"
						   : "PRAGMA synchronous = NORMAL",
		  error))
		return FALSE;
	if (!migrate(self, &error_local)) {
		/* its message starts with the path already */
		g_set_error(error,
			    error_local->domain,
			    error_local->code,
			    /* Translators: %s is an error message that starts with
			     * the path of the database */
			    _("cannot use the database %s"),
			    error_local->message);
		return FALSE;
	}
	/* for tests of a full disk: a database that cannot grow past N pages */
	if (g_getenv("CODECHATD_TEST_MAX_PAGES") != NULL) {
		g_autofree gchar *sql = g_strdup_printf(
		    "PRAGMA max_page_count = %" G_GUINT64_FORMAT,
		    g_ascii_strtoull(g_getenv("CODECHATD_TEST_MAX_PAGES"), NULL, 10));
		sqlite3_exec(self->writer, sql, NULL, NULL, NULL);
	}
	if (!prepare(self->writer,
		     self->path,
		     "INSERT INTO messages (conv, id, room, recipient, sender, ts, kind, text, "
		     "lang, filename) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
		     &self->insert_message,
		     error) ||
	    !prepare(self->writer,
		     self->path,
		     "INSERT OR IGNORE INTO nicks (fold, nick, first_seen) VALUES (?1, ?2, ?3)",
		     &self->insert_nick,
		     error) ||
	    !prepare(self->writer,
		     self->path,
		     "DELETE FROM messages WHERE conv = ?1 AND id <= ?2",
		     &self->delete_old,
		     error))
		return FALSE;

	if (!open_db(self->path, FALSE, &self->reader, error))
		return FALSE;
	if (!prepare(
		self->reader,
		self->path,
		"SELECT room, recipient, sender, id, ts, kind, text, lang, filename "
		"FROM messages WHERE conv = ?1 AND id > ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4",
		&self->query_newest,
		error) ||
	    !prepare(
		self->reader,
		self->path,
		"SELECT room, recipient, sender, id, ts, kind, text, lang, filename "
		"FROM messages WHERE conv = ?1 AND id > ?2 AND id < ?3 ORDER BY id ASC LIMIT ?4",
		&self->query_oldest,
		error))
		return FALSE;
	if (!load(self, error))
		return FALSE;

	self->thread = g_thread_try_new("codechat-store", writer_main, self, error);
	if (self->thread != NULL) {
		/* the iteration after the input came: all of it at once, and
		 * before any output is written (that waits for nothing at the
		 * default priority to be ready) */
		self->handoff = g_source_new(&handoff_funcs, sizeof(HandoffSource));
		((HandoffSource *)self->handoff)->store = self;
		g_source_set_priority(self->handoff, G_PRIORITY_DEFAULT);
		g_source_set_static_name(self->handoff, "codechat-store-handoff");
		g_source_attach(self->handoff, self->context);
	}
	return self->thread != NULL;
}

/**
 * codechat_store_sqlite_new:
 * @data_dir: the directory of the database, created (0700) if missing
 *
 * Opens or creates DATA_DIR/codechat.db and brings its schema up to date.
 * Every failure says which path and why: the daemon prints it and exits.
 */
CodechatStore *
codechat_store_sqlite_new(const gchar *data_dir, CodechatStoreSync sync, GError **error)
{
	g_autoptr(CodechatStoreSqlite) self = g_object_new(CODECHAT_TYPE_STORE_SQLITE, NULL);

	g_return_val_if_fail(data_dir != NULL, NULL);
	if (!open_store(self, data_dir, sync, error))
		return NULL;
	g_info("history in %s (epoch %s, %u conversations, %u nicks)",
	       self->path,
	       self->epoch,
	       g_hash_table_size(self->convs),
	       g_hash_table_size(self->nicks));
	return CODECHAT_STORE(g_steal_pointer(&self));
}

/**
 * codechat_store_sqlite_set_commit_func:
 * @func: (nullable): called on the main context with the seconds that
 *   each group-commit transaction took, BEGIN to COMMIT done (with the
 *   fsync), once its messages are dispatched
 * @notify: (nullable): frees @user_data with the store or the next call
 *
 * For the metrics.  The writer thread only measures; the figure travels
 * with the batch, so nothing is shared between the threads for it.
 */
void
codechat_store_sqlite_set_commit_func(CodechatStoreSqlite *self,
				      CodechatStoreCommitFunc func,
				      gpointer user_data,
				      GDestroyNotify notify)
{
	g_return_if_fail(CODECHAT_IS_STORE_SQLITE(self));

	if (self->commit_notify != NULL)
		self->commit_notify(self->commit_data);
	self->commit_func = func;
	self->commit_data = user_data;
	self->commit_notify = notify;
}

/**
 * codechat_store_sqlite_set_history_max:
 * @history_max: messages kept per conversation, the oldest deleted beyond
 *   them as new ones are committed; 0 keeps all
 */
void
codechat_store_sqlite_set_history_max(CodechatStoreSqlite *self, guint history_max)
{
	g_return_if_fail(CODECHAT_IS_STORE_SQLITE(self));
	g_atomic_int_set(&self->history_max, history_max);
}

static void
codechat_store_sqlite_dispose(GObject *object)
{
	CodechatStoreSqlite *self = CODECHAT_STORE_SQLITE(object);

	/* the writer finishes what it has, then every callback runs */
	if (self->handoff != NULL) {
		g_source_destroy(self->handoff);
		g_clear_pointer(&self->handoff, g_source_unref);
	}
	if (self->thread != NULL) {
		handoff(self);
		g_mutex_lock(&self->lock);
		self->quit = TRUE;
		g_cond_broadcast(&self->cond);
		g_mutex_unlock(&self->lock);
		g_thread_join(g_steal_pointer(&self->thread));
	}
	dispatch_done(self, FALSE);
	G_OBJECT_CLASS(codechat_store_sqlite_parent_class)->dispose(object);
}

static void
codechat_store_sqlite_finalize(GObject *object)
{
	CodechatStoreSqlite *self = CODECHAT_STORE_SQLITE(object);

	sqlite3_finalize(self->insert_message);
	sqlite3_finalize(self->insert_nick);
	sqlite3_finalize(self->delete_old);
	sqlite3_finalize(self->query_newest);
	sqlite3_finalize(self->query_oldest);
	sqlite3_close(self->reader);
	sqlite3_close(self->writer);
	g_ptr_array_unref(self->pending);
	g_ptr_array_unref(self->local);
	g_hash_table_unref(self->convs);
	g_hash_table_unref(self->nicks);
	g_main_context_unref(self->context);
	if (self->lock_fd >= 0)
		close(self->lock_fd);
	g_mutex_clear(&self->lock);
	g_cond_clear(&self->cond);
	if (self->commit_notify != NULL)
		self->commit_notify(self->commit_data);
	g_free(self->path);
	g_free(self->epoch);
	G_OBJECT_CLASS(codechat_store_sqlite_parent_class)->finalize(object);
}

static void
codechat_store_sqlite_class_init(CodechatStoreSqliteClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = codechat_store_sqlite_dispose;
	object_class->finalize = codechat_store_sqlite_finalize;
}

static void
codechat_store_sqlite_init(CodechatStoreSqlite *self)
{
	g_mutex_init(&self->lock);
	g_cond_init(&self->cond);
	g_queue_init(&self->done);
	self->pending = g_ptr_array_new_with_free_func((GDestroyNotify)op_free);
	self->local = g_ptr_array_new_with_free_func((GDestroyNotify)op_free);
	self->convs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	self->nicks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	self->context = g_main_context_ref_thread_default();
	self->lock_fd = -1;
}
