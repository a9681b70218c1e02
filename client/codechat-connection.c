/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>
#include <libsoup/soup.h>

#include "codechat-connection.h"
#include "codechat-log.h"
#include "codechat-protocol.h"
#include "codechat-version.h"

/* the WebSocket handshake, then hello until welcome, then a clean close */
#define CONNECT_TIMEOUT_S 10
#define HELLO_TIMEOUT_S	  10
#define CLOSE_TIMEOUT_S	  3

/* one frame from the server can be a whole history page: up to 500
 * messages of up to 64 KiB each, escaped; never 0 (DESIGN.md) */
#define MAX_INCOMING_PAYLOAD (64 * 1024 * 1024)

/**
 * CodechatConnection:
 *
 * One session with codechatd over a WebSocket: the handshake offering
 * `codechat.v1`, `hello` until `welcome`, then requests matched to their
 * replies by `ref`.  Frames that answer no request (live messages,
 * presence, replays after `join`) are emitted as #CodechatConnection::message,
 * in the order they arrived.  A connection is used once: after it closed,
 * make a new one.
 */

typedef enum {
	STATE_NEW,
	STATE_CONNECTING,
	STATE_HELLO,
	STATE_READY,
	STATE_CLOSED,
} ConnState;

typedef struct {
	gchar *ref;	  /* (owned) */
	gchar *type;	  /* (owned) the request's type, for messages */
	GTask *task;	  /* (owned) */
	guint timeout_id; /* GSource id, 0 if none */
	guint timeout_s;
} Pending;

struct _CodechatConnection {
	GObject parent_instance;
	gchar *uri;			   /* (owned) */
	gchar *nick;			   /* (owned) asked for, then the welcome's */
	gchar *token;			   /* (owned) (nullable) a secret: never logged */
	SoupSession *session;		   /* (owned) (nullable) */
	SoupWebsocketConnection *ws;	   /* (owned) (nullable) */
	JsonObject *welcome;		   /* (owned) (nullable) */
	GTask *connect_task;		   /* (owned) (nullable) */
	GCancellable *connect_cancellable; /* (owned) (nullable) */
	GCancellable *user_cancellable;	   /* (owned) (nullable) */
	gulong user_cancelled_id;
	GHashTable *pending;	/* (owned) ref → (owned) Pending */
	GPtrArray *close_tasks; /* (owned) (element-type GTask) */
	GError *ws_error;	/* (owned) (nullable) the last protocol error */
	ConnState state;
	guint next_ref;
	guint timeout_id;	/* GSource id of the connect or hello timer, 0 if none */
	guint close_timeout_id; /* GSource id, 0 if none */
	gboolean timed_out;
	GTlsCertificateFlags tls_errors; /* why the server's certificate was refused */
};

G_DEFINE_FINAL_TYPE(CodechatConnection, codechat_connection, G_TYPE_OBJECT)

/* the CAs that wss:// servers are checked against; NULL for the system's */
static GTlsDatabase *tls_database; /* (owned) (nullable) */

/**
 * codechat_connection_set_tls_database:
 * @database: (nullable): the trusted CAs, or %NULL for the system's
 *
 * Sets the CAs that the certificates of wss:// servers are checked
 * against, for every connection made from now on (`--ca-file`).
 */
void
codechat_connection_set_tls_database(GTlsDatabase *database)
{
	g_return_if_fail(database == NULL || G_IS_TLS_DATABASE(database));
	g_set_object(&tls_database, database);
}

enum {
	PROP_0,
	PROP_URI,
	PROP_NICK,
	PROP_TOKEN,
	N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
	SIGNAL_MESSAGE,
	SIGNAL_CLOSED,
	N_SIGNALS
};

static guint signals[N_SIGNALS];

static void
pending_free(Pending *p)
{
	g_clear_handle_id(&p->timeout_id, g_source_remove);
	g_clear_object(&p->task);
	g_free(p->type);
	g_free(p->ref);
	g_free(p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Pending, pending_free)

static const gchar *
object_get_string(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(node);
}

/* an `error` frame as a GError in the shared domain */
static GError *
error_from_frame(JsonObject *obj)
{
	const gchar *code = object_get_string(obj, "code");
	const gchar *message = object_get_string(obj, "message");

	if (code == NULL)
		code = "internal";
	return g_error_new(CODECHAT_ERROR,
			   codechat_error_from_code(code),
			   "%s",
			   message != NULL ? message : code);
}

static gboolean
ws_is_open(CodechatConnection *self)
{
	return self->ws != NULL &&
	       soup_websocket_connection_get_state(self->ws) == SOUP_WEBSOCKET_STATE_OPEN;
}

static void
send_object(CodechatConnection *self, JsonObject *obj)
{
	g_autoptr(JsonNode) root = json_node_new(JSON_NODE_OBJECT);
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autofree gchar *text = NULL;

	json_node_set_object(root, obj);
	json_generator_set_root(gen, root);
	text = json_generator_to_data(gen, NULL);
	/* sending on a socket that is not open is a critical warning */
	if (ws_is_open(self))
		soup_websocket_connection_send_text(self->ws, text);
}

static void
disconnect_user_cancellable(CodechatConnection *self)
{
	if (self->user_cancellable != NULL && self->user_cancelled_id != 0)
		g_cancellable_disconnect(self->user_cancellable, self->user_cancelled_id);
	self->user_cancelled_id = 0;
	g_clear_object(&self->user_cancellable);
}

static void
close_ws(CodechatConnection *self)
{
	if (ws_is_open(self))
		soup_websocket_connection_close(self->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
}

/* ends connect_async with @error (taken) */
static void
connect_fail(CodechatConnection *self, GError *error)
{
	g_autoptr(GTask) task = g_steal_pointer(&self->connect_task);

	g_clear_handle_id(&self->timeout_id, g_source_remove);
	disconnect_user_cancellable(self);
	self->state = STATE_CLOSED;
	close_ws(self);
	if (task != NULL)
		g_task_return_error(task, error);
	else
		g_error_free(error);
}

static void
fail_all_pending(CodechatConnection *self, const GError *error)
{
	GHashTableIter iter;
	gpointer value;
	g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func(g_object_unref);

	/* first empty the table, then complete: a callback may send again */
	g_hash_table_iter_init(&iter, self->pending);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		Pending *p = value;
		g_ptr_array_add(tasks, g_steal_pointer(&p->task));
	}
	g_hash_table_remove_all(self->pending);
	for (guint i = 0; i < tasks->len; i++)
		g_task_return_error(g_ptr_array_index(tasks, i), g_error_copy(error));
}

static void
complete_close_tasks(CodechatConnection *self)
{
	g_autoptr(GPtrArray) tasks = g_steal_pointer(&self->close_tasks);

	self->close_tasks = g_ptr_array_new_with_free_func(g_object_unref);
	g_clear_handle_id(&self->close_timeout_id, g_source_remove);
	for (guint i = 0; i < tasks->len; i++)
		g_task_return_boolean(g_ptr_array_index(tasks, i), TRUE);
}

/* the socket is gone, or we stop waiting for it */
static void
mark_closed(CodechatConnection *self, gushort code, const gchar *reason)
{
	ConnState prev = self->state;
	g_autoptr(GError) error = NULL;

	/* an abnormal close has no reason of its own; the socket error says more */
	if ((reason == NULL || reason[0] == '\0') && self->ws_error != NULL)
		reason = self->ws_error->message;
	self->state = STATE_CLOSED;
	g_clear_handle_id(&self->timeout_id, g_source_remove);

	if (self->connect_task != NULL) {
		connect_fail(self,
			     g_error_new(CODECHAT_ERROR,
					 CODECHAT_ERROR_NOT_CONNECTED,
					 _("%s closed the connection before welcome (code %u%s%s)"),
					 self->uri,
					 code,
					 reason != NULL && reason[0] != '\0' ? ": " : "",
					 reason != NULL ? reason : ""));
	}
	error = g_error_new(CODECHAT_ERROR,
			    CODECHAT_ERROR_CLOSED,
			    _("the connection closed (code %u%s%s)"),
			    code,
			    reason != NULL && reason[0] != '\0' ? ": " : "",
			    reason != NULL ? reason : "");
	fail_all_pending(self, error);
	complete_close_tasks(self);
	if (prev == STATE_READY)
		g_signal_emit(self, signals[SIGNAL_CLOSED], 0, (guint)code, reason);
}

static void
ws_closed_cb(SoupWebsocketConnection *ws, gpointer user_data)
{
	g_autoptr(CodechatConnection) self = g_object_ref(CODECHAT_CONNECTION(user_data));
	gushort code = soup_websocket_connection_get_close_code(ws);
	const gchar *reason = soup_websocket_connection_get_close_data(ws);

	codechat_debug(CODECHAT_LOG_FIELDS(.peer = self->uri),
		       "connection to %s closed with code %u",
		       self->uri,
		       code);
	if (self->state == STATE_CLOSED && self->connect_task == NULL &&
	    g_hash_table_size(self->pending) == 0 && self->close_tasks->len == 0)
		return;
	mark_closed(self, code, reason);
}

static void
ws_error_cb(SoupWebsocketConnection *ws, GError *error, gpointer user_data)
{
	CodechatConnection *self = CODECHAT_CONNECTION(user_data);

	codechat_debug(CODECHAT_LOG_FIELDS(.peer = self->uri),
		       "WebSocket error on %s: %s",
		       self->uri,
		       error->message);
	g_clear_error(&self->ws_error);
	self->ws_error = g_error_copy(error);
}

static void
handle_hello_reply(CodechatConnection *self, JsonObject *obj, const gchar *type)
{
	g_autoptr(GTask) task = NULL;
	const gchar *nick;

	if (g_strcmp0(type, "error") == 0) {
		connect_fail(self, error_from_frame(obj));
		return;
	}
	if (g_strcmp0(type, "welcome") != 0) {
		g_debug("ignoring a %s frame before welcome", type != NULL ? type : "typeless");
		return;
	}
	g_clear_handle_id(&self->timeout_id, g_source_remove);
	disconnect_user_cancellable(self);
	self->welcome = json_object_ref(obj);
	nick = object_get_string(obj, "nick");
	if (nick != NULL && g_strcmp0(nick, self->nick) != 0) {
		g_free(self->nick);
		self->nick = g_strdup(nick);
	}
	self->state = STATE_READY;
	codechat_info(CODECHAT_LOG_FIELDS(.peer = self->uri, .nick = self->nick),
		      "connected to %s as %s",
		      self->uri,
		      self->nick);
	task = g_steal_pointer(&self->connect_task);
	g_task_return_boolean(task, TRUE);
}

static void
ws_message_cb(SoupWebsocketConnection *ws, gint type, GBytes *message, gpointer user_data)
{
	g_autoptr(CodechatConnection) self = g_object_ref(CODECHAT_CONNECTION(user_data));
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(Pending) p = NULL;
	const gchar *data;
	gsize len;
	JsonNode *root;
	JsonObject *obj;
	const gchar *frame_type;
	const gchar *ref;
	gpointer key = NULL;
	gpointer value = NULL;

	if (type != SOUP_WEBSOCKET_DATA_TEXT) {
		g_debug("ignoring a binary frame");
		return;
	}
	data = g_bytes_get_data(message, &len);
	if (len > G_MAXSSIZE || !json_parser_load_from_data(parser, data, (gssize)len, &error)) {
		g_debug("ignoring a frame that is not JSON: %s",
			error != NULL ? error->message : "too large");
		return;
	}
	root = json_parser_get_root(parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
		g_debug("ignoring a frame that is not an object");
		return;
	}
	obj = json_node_get_object(root);
	frame_type = object_get_string(obj, "type");
	ref = object_get_string(obj, "ref");
	g_debug("<- %s%s%s", frame_type, ref != NULL ? " ref " : "", ref != NULL ? ref : "");

	if (self->state == STATE_HELLO) {
		handle_hello_reply(self, obj, frame_type);
		return;
	}
	if (self->state != STATE_READY)
		return;
	if (ref != NULL && g_hash_table_steal_extended(self->pending, ref, &key, &value)) {
		GTask *task;

		p = value;
		g_clear_handle_id(&p->timeout_id, g_source_remove);
		task = p->task;
		if (g_strcmp0(frame_type, "error") == 0)
			g_task_return_error(task, error_from_frame(obj));
		else
			g_task_return_pointer(task,
					      json_object_ref(obj),
					      (GDestroyNotify)json_object_unref);
		return;
	}
	g_signal_emit(self, signals[SIGNAL_MESSAGE], 0, obj);
}

static gboolean
hello_timeout_cb(gpointer user_data)
{
	CodechatConnection *self = CODECHAT_CONNECTION(user_data);

	self->timeout_id = 0;
	connect_fail(self,
		     g_error_new(CODECHAT_ERROR,
				 CODECHAT_ERROR_NOT_CONNECTED,
				 _("%s sent no welcome within %d seconds"),
				 self->uri,
				 HELLO_TIMEOUT_S));
	return G_SOURCE_REMOVE;
}

static void
send_hello(CodechatConnection *self)
{
	g_autoptr(JsonObject) hello = json_object_new();

	json_object_set_string_member(hello, "type", "hello");
	json_object_set_string_member(hello, "nick", self->nick);
	json_object_set_string_member(hello, "client", "codechat/" PACKAGE_VERSION);
	if (self->token != NULL)
		json_object_set_string_member(hello, "token", self->token);
	/* the token stays out of the log */
	codechat_debug(CODECHAT_LOG_FIELDS(.peer = self->uri, .nick = self->nick),
		       "-> hello as %s%s",
		       self->nick,
		       self->token != NULL ? " with a token" : "");
	send_object(self, hello);
}

/* what is wrong with a certificate, in words */
static gchar *
tls_errors_to_string(GTlsCertificateFlags errors)
{
	/* a private CA that was not named, or was not the right one */
	const gchar *unknown_ca =
	    tls_database == NULL
		? _("it is not signed by a known certificate authority (for a private CA, use "
		    "--ca-file)")
		: _("it is not signed by a certificate authority of the CA file");
	g_autoptr(GString) str = g_string_new(NULL);
	const struct {
		GTlsCertificateFlags flag;
		const gchar *text;
	} reasons[] = {
	    {G_TLS_CERTIFICATE_UNKNOWN_CA, unknown_ca},
	    {G_TLS_CERTIFICATE_BAD_IDENTITY, _("it is not for this host name")},
	    {G_TLS_CERTIFICATE_NOT_ACTIVATED, _("it is not valid yet")},
	    {G_TLS_CERTIFICATE_EXPIRED, _("it has expired")},
	    {G_TLS_CERTIFICATE_REVOKED, _("it has been revoked")},
	    {G_TLS_CERTIFICATE_INSECURE, _("it uses an insecure algorithm")},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(reasons); i++) {
		if ((errors & reasons[i].flag) == 0)
			continue;
		if (str->len > 0)
			g_string_append(str, "; ");
		g_string_append(str, reasons[i].text);
	}
	if (str->len == 0)
		g_string_append(str, _("it is not valid"));
	return g_string_free(g_steal_pointer(&str), FALSE);
}

/* libsoup refuses a certificate that fails the check by itself; this only
 * keeps the reason, which its error leaves out */
static gboolean
accept_certificate_cb(SoupMessage *msg,
		      GTlsCertificate *certificate,
		      GTlsCertificateFlags errors,
		      gpointer user_data)
{
	CodechatConnection *self = CODECHAT_CONNECTION(user_data);

	self->tls_errors = errors != 0 ? errors : G_TLS_CERTIFICATE_GENERIC_ERROR;
	return FALSE;
}

static void
websocket_connect_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(CodechatConnection) self = CODECHAT_CONNECTION(user_data);
	g_autoptr(GError) error = NULL;
	g_autoptr(SoupWebsocketConnection) ws = NULL;

	ws = soup_session_websocket_connect_finish(SOUP_SESSION(source), result, &error);
	g_clear_handle_id(&self->timeout_id, g_source_remove);
	if (self->connect_task == NULL) {
		/* closed while connecting */
		if (ws != NULL &&
		    soup_websocket_connection_get_state(ws) == SOUP_WEBSOCKET_STATE_OPEN)
			soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
		return;
	}
	if (ws == NULL) {
		if (self->user_cancellable != NULL &&
		    g_cancellable_is_cancelled(self->user_cancellable)) {
			connect_fail(self, g_steal_pointer(&error));
		} else if (self->timed_out) {
			connect_fail(
			    self,
			    g_error_new(CODECHAT_ERROR,
					CODECHAT_ERROR_NOT_CONNECTED,
					_("cannot connect to %s: timed out after %d seconds"),
					self->uri,
					CONNECT_TIMEOUT_S));
		} else if (self->tls_errors != 0) {
			g_autofree gchar *reason = tls_errors_to_string(self->tls_errors);
			connect_fail(
			    self,
			    g_error_new(CODECHAT_ERROR,
					CODECHAT_ERROR_NOT_CONNECTED,
					_("cannot connect to %s: certificate not trusted: %s"),
					self->uri,
					reason));
		} else {
			connect_fail(self,
				     g_error_new(CODECHAT_ERROR,
						 CODECHAT_ERROR_NOT_CONNECTED,
						 _("cannot connect to %s: %s"),
						 self->uri,
						 error->message));
		}
		return;
	}

	codechat_debug(CODECHAT_LOG_FIELDS(.peer = self->uri),
		       "WebSocket open to %s (subprotocol %s)",
		       self->uri,
		       soup_websocket_connection_get_protocol(ws) != NULL
			   ? soup_websocket_connection_get_protocol(ws)
			   : "none");
	self->ws = g_steal_pointer(&ws);
	soup_websocket_connection_set_max_incoming_payload_size(self->ws, MAX_INCOMING_PAYLOAD);
	g_signal_connect_object(self->ws, "message", G_CALLBACK(ws_message_cb), self, 0);
	g_signal_connect_object(self->ws, "closed", G_CALLBACK(ws_closed_cb), self, 0);
	g_signal_connect_object(self->ws, "error", G_CALLBACK(ws_error_cb), self, 0);
	self->state = STATE_HELLO;
	self->timeout_id = g_timeout_add_seconds(HELLO_TIMEOUT_S, hello_timeout_cb, self);
	send_hello(self);
}

static gboolean
connect_timeout_cb(gpointer user_data)
{
	CodechatConnection *self = CODECHAT_CONNECTION(user_data);

	self->timeout_id = 0;
	self->timed_out = TRUE;
	g_cancellable_cancel(self->connect_cancellable);
	return G_SOURCE_REMOVE;
}

static void
user_cancelled_cb(GCancellable *cancellable, gpointer user_data)
{
	/* soup completes the connect later, from the main loop */
	g_cancellable_cancel(G_CANCELLABLE(user_data));
}

/**
 * codechat_connection_connect_async:
 * @cancellable: (nullable): cancels the WebSocket handshake
 *
 * Opens the WebSocket, sends `hello` and completes on `welcome`.  Errors:
 * %CODECHAT_ERROR_NOT_CONNECTED when the server cannot be reached, refuses
 * the handshake or closes before `welcome`; the server's own code (such as
 * %CODECHAT_ERROR_NICK_TAKEN) when it answers `hello` with `error`.
 */
void
codechat_connection_connect_async(CodechatConnection *self,
				  GCancellable *cancellable,
				  GAsyncReadyCallback callback,
				  gpointer user_data)
{
	g_autoptr(GTask) task = NULL;
	g_autoptr(SoupMessage) msg = NULL;
	const gchar *protocols[] = {CODECHAT_SUBPROTOCOL, NULL};

	g_return_if_fail(CODECHAT_IS_CONNECTION(self));
	g_return_if_fail(cancellable == NULL || G_IS_CANCELLABLE(cancellable));

	task = g_task_new(self, cancellable, callback, user_data);
	g_task_set_source_tag(task, codechat_connection_connect_async);
	g_task_set_name(task, "codechat-connect");

	if (self->state != STATE_NEW) {
		g_task_return_new_error(task,
					CODECHAT_ERROR,
					CODECHAT_ERROR_INTERNAL,
					"a connection can only be opened once");
		return;
	}
	msg = soup_message_new(SOUP_METHOD_GET, self->uri);
	if (msg == NULL) {
		self->state = STATE_CLOSED;
		g_task_return_new_error(task,
					CODECHAT_ERROR,
					CODECHAT_ERROR_INVALID_ARGUMENT,
					_("“%s” is not a valid server URL"),
					self->uri);
		return;
	}

	codechat_info(CODECHAT_LOG_FIELDS(.peer = self->uri), "connecting to %s", self->uri);
	self->state = STATE_CONNECTING;
	self->connect_task = g_steal_pointer(&task);
	self->connect_cancellable = g_cancellable_new();
	if (cancellable != NULL) {
		self->user_cancellable = g_object_ref(cancellable);
		self->user_cancelled_id =
		    g_cancellable_connect(cancellable,
					  G_CALLBACK(user_cancelled_cb),
					  g_object_ref(self->connect_cancellable),
					  g_object_unref);
	}
	self->session =
	    soup_session_new_with_options("user-agent", "codechat/" PACKAGE_VERSION, NULL);
	if (tls_database != NULL)
		soup_session_set_tls_database(self->session, tls_database);
	g_signal_connect_object(msg,
				"accept-certificate",
				G_CALLBACK(accept_certificate_cb),
				self,
				0);
	self->timeout_id = g_timeout_add_seconds(CONNECT_TIMEOUT_S, connect_timeout_cb, self);
	soup_session_websocket_connect_async(self->session,
					     msg,
					     NULL,
					     (gchar **)protocols,
					     G_PRIORITY_DEFAULT,
					     self->connect_cancellable,
					     websocket_connect_cb,
					     g_object_ref(self));
}

gboolean
codechat_connection_connect_finish(CodechatConnection *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(CODECHAT_IS_CONNECTION(self), FALSE);
	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	return g_task_propagate_boolean(G_TASK(result), error);
}

static gboolean
pending_timeout_cb(gpointer user_data)
{
	Pending *p = user_data;
	CodechatConnection *self = g_task_get_source_object(p->task);
	g_autoptr(Pending) own = NULL;
	g_autoptr(GTask) task = NULL;
	gpointer key = NULL;
	gpointer value = NULL;

	p->timeout_id = 0;
	if (!g_hash_table_steal_extended(self->pending, p->ref, &key, &value))
		return G_SOURCE_REMOVE;
	own = value;
	task = g_steal_pointer(&own->task);
	g_task_return_new_error(task,
				CODECHAT_ERROR,
				CODECHAT_ERROR_TIMED_OUT,
				_("no reply to %s from the server within %u seconds"),
				own->type,
				own->timeout_s);
	return G_SOURCE_REMOVE;
}

/**
 * codechat_connection_request_async:
 * @request: a request object with its `type`; a unique `ref` is added to it
 * @timeout_s: seconds to wait for the reply, 0 for no limit
 *
 * Sends @request and completes with the frame that carries the same
 * `ref`: the reply (`joined`, `history`, the acknowledging `message`, …)
 * or, for `error`, a #GError with the server's code.  A request has no
 * cancellable: closing the connection fails every pending request with
 * %CODECHAT_ERROR_CLOSED.
 */
void
codechat_connection_request_async(CodechatConnection *self,
				  JsonObject *request,
				  guint timeout_s,
				  GAsyncReadyCallback callback,
				  gpointer user_data)
{
	g_autoptr(GTask) task = NULL;
	Pending *p;

	g_return_if_fail(CODECHAT_IS_CONNECTION(self));
	g_return_if_fail(request != NULL);

	task = g_task_new(self, NULL, callback, user_data);
	g_task_set_source_tag(task, codechat_connection_request_async);
	g_task_set_name(task, "codechat-request");

	if (self->state != STATE_READY || !ws_is_open(self)) {
		g_task_return_new_error(task,
					CODECHAT_ERROR,
					CODECHAT_ERROR_CLOSED,
					_("not connected to %s"),
					self->uri);
		return;
	}

	p = g_new0(Pending, 1);
	p->ref = g_strdup_printf("c%u", ++self->next_ref);
	p->type = g_strdup(object_get_string(request, "type"));
	p->task = g_steal_pointer(&task);
	p->timeout_s = timeout_s;
	json_object_set_string_member(request, "ref", p->ref);
	g_hash_table_insert(self->pending, p->ref, p);
	if (timeout_s > 0)
		p->timeout_id = g_timeout_add_seconds(timeout_s, pending_timeout_cb, p);
	g_debug("-> %s ref %s", p->type, p->ref);
	send_object(self, request);
}

/**
 * codechat_connection_request_finish:
 *
 * Returns: (transfer full): the reply frame
 */
JsonObject *
codechat_connection_request_finish(CodechatConnection *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(CODECHAT_IS_CONNECTION(self), NULL);
	g_return_val_if_fail(g_task_is_valid(result, self), NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	return g_task_propagate_pointer(G_TASK(result), error);
}

static gboolean
close_timeout_cb(gpointer user_data)
{
	CodechatConnection *self = CODECHAT_CONNECTION(user_data);

	self->close_timeout_id = 0;
	codechat_debug(CODECHAT_LOG_FIELDS(.peer = self->uri),
		       "%s did not finish the closing handshake in time",
		       self->uri);
	mark_closed(self, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
	return G_SOURCE_REMOVE;
}

/**
 * codechat_connection_close_async:
 *
 * Closes the session with code 1000 and completes once the server
 * answered the close (or after a few seconds).  Pending requests fail
 * with %CODECHAT_ERROR_CLOSED; a connect in progress fails.
 */
void
codechat_connection_close_async(CodechatConnection *self,
				GAsyncReadyCallback callback,
				gpointer user_data)
{
	g_autoptr(GTask) task = NULL;

	g_return_if_fail(CODECHAT_IS_CONNECTION(self));

	task = g_task_new(self, NULL, callback, user_data);
	g_task_set_source_tag(task, codechat_connection_close_async);
	g_task_set_name(task, "codechat-close");

	switch (self->state) {
	case STATE_NEW:
	case STATE_CLOSED:
		self->state = STATE_CLOSED;
		g_task_return_boolean(task, TRUE);
		return;
	case STATE_CONNECTING:
		/* the handshake callback fails the connect */
		g_cancellable_cancel(self->connect_cancellable);
		g_task_return_boolean(task, TRUE);
		return;
	case STATE_HELLO:
	case STATE_READY:
	default:
		break;
	}
	if (!ws_is_open(self) &&
	    (self->ws == NULL ||
	     soup_websocket_connection_get_state(self->ws) == SOUP_WEBSOCKET_STATE_CLOSED)) {
		mark_closed(self, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
		g_task_return_boolean(task, TRUE);
		return;
	}
	g_ptr_array_add(self->close_tasks, g_steal_pointer(&task));
	if (self->close_timeout_id == 0)
		self->close_timeout_id =
		    g_timeout_add_seconds(CLOSE_TIMEOUT_S, close_timeout_cb, self);
	codechat_debug(CODECHAT_LOG_FIELDS(.peer = self->uri),
		       "closing the connection to %s",
		       self->uri);
	close_ws(self);
}

gboolean
codechat_connection_close_finish(CodechatConnection *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(CODECHAT_IS_CONNECTION(self), FALSE);
	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	return g_task_propagate_boolean(G_TASK(result), error);
}

const gchar *
codechat_connection_get_uri(CodechatConnection *self)
{
	g_return_val_if_fail(CODECHAT_IS_CONNECTION(self), NULL);
	return self->uri;
}

/* the nick asked for, or the one the server welcomed */
const gchar *
codechat_connection_get_nick(CodechatConnection *self)
{
	g_return_val_if_fail(CODECHAT_IS_CONNECTION(self), NULL);
	return self->nick;
}

/**
 * codechat_connection_get_welcome:
 *
 * Returns: (transfer none) (nullable): the `welcome` frame once connected
 */
JsonObject *
codechat_connection_get_welcome(CodechatConnection *self)
{
	g_return_val_if_fail(CODECHAT_IS_CONNECTION(self), NULL);
	return self->welcome;
}

const gchar *
codechat_connection_get_epoch(CodechatConnection *self)
{
	g_return_val_if_fail(CODECHAT_IS_CONNECTION(self), NULL);
	if (self->welcome == NULL)
		return NULL;
	return object_get_string(self->welcome, "epoch");
}

/* the server's limit on text, from welcome's limits, or the default */
gsize
codechat_connection_get_max_text(CodechatConnection *self)
{
	JsonNode *node;
	JsonObject *limits;

	g_return_val_if_fail(CODECHAT_IS_CONNECTION(self), CODECHAT_MAX_TEXT);
	if (self->welcome == NULL)
		return CODECHAT_MAX_TEXT;
	node = json_object_get_member(self->welcome, "limits");
	if (node == NULL || !JSON_NODE_HOLDS_OBJECT(node))
		return CODECHAT_MAX_TEXT;
	limits = json_node_get_object(node);
	node = json_object_get_member(limits, "max_text");
	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_INT64 || json_node_get_int(node) < 1)
		return CODECHAT_MAX_TEXT;
	return (gsize)json_node_get_int(node);
}

gboolean
codechat_connection_is_ready(CodechatConnection *self)
{
	g_return_val_if_fail(CODECHAT_IS_CONNECTION(self), FALSE);
	return self->state == STATE_READY && ws_is_open(self);
}

static void
codechat_connection_dispose(GObject *object)
{
	CodechatConnection *self = CODECHAT_CONNECTION(object);

	g_clear_handle_id(&self->timeout_id, g_source_remove);
	g_clear_handle_id(&self->close_timeout_id, g_source_remove);
	disconnect_user_cancellable(self);
	if (self->ws != NULL) {
		g_signal_handlers_disconnect_by_data(self->ws, self);
		close_ws(self);
	}
	g_clear_object(&self->ws);
	g_clear_object(&self->session);
	g_clear_object(&self->connect_cancellable);
	g_clear_pointer(&self->welcome, json_object_unref);

	G_OBJECT_CLASS(codechat_connection_parent_class)->dispose(object);
}

static void
codechat_connection_finalize(GObject *object)
{
	CodechatConnection *self = CODECHAT_CONNECTION(object);

	g_hash_table_unref(self->pending);
	g_ptr_array_unref(self->close_tasks);
	g_clear_error(&self->ws_error);
	g_free(self->uri);
	g_free(self->nick);
	g_free(self->token);

	G_OBJECT_CLASS(codechat_connection_parent_class)->finalize(object);
}

static void
codechat_connection_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
	CodechatConnection *self = CODECHAT_CONNECTION(object);

	switch (prop_id) {
	case PROP_URI:
		g_value_set_string(value, self->uri);
		break;
	case PROP_NICK:
		g_value_set_string(value, self->nick);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_connection_set_property(GObject *object,
				 guint prop_id,
				 const GValue *value,
				 GParamSpec *pspec)
{
	CodechatConnection *self = CODECHAT_CONNECTION(object);

	switch (prop_id) {
	case PROP_URI:
		g_free(self->uri);
		self->uri = g_value_dup_string(value);
		break;
	case PROP_NICK:
		g_free(self->nick);
		self->nick = g_value_dup_string(value);
		break;
	case PROP_TOKEN:
		g_free(self->token);
		self->token = g_value_dup_string(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_connection_class_init(CodechatConnectionClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = codechat_connection_dispose;
	object_class->finalize = codechat_connection_finalize;
	object_class->get_property = codechat_connection_get_property;
	object_class->set_property = codechat_connection_set_property;

	properties[PROP_URI] =
	    g_param_spec_string("uri",
				NULL,
				NULL,
				NULL,
				G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
				    G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
	properties[PROP_NICK] =
	    g_param_spec_string("nick",
				NULL,
				NULL,
				NULL,
				G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
				    G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
	/* write-only: a secret */
	properties[PROP_TOKEN] =
	    g_param_spec_string("token",
				NULL,
				NULL,
				NULL,
				G_PARAM_WRITABLE | G_PARAM_CONSTRUCT_ONLY |
				    G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
	g_object_class_install_properties(object_class, N_PROPS, properties);

	/**
	 * CodechatConnection::message:
	 * @frame: the frame, a JSON object with a `type`
	 *
	 * A frame that answers no pending request, in arrival order.
	 */
	signals[SIGNAL_MESSAGE] = g_signal_new("message",
					       G_TYPE_FROM_CLASS(klass),
					       G_SIGNAL_RUN_LAST,
					       0,
					       NULL,
					       NULL,
					       NULL,
					       G_TYPE_NONE,
					       1,
					       JSON_TYPE_OBJECT);

	/**
	 * CodechatConnection::closed:
	 * @code: the WebSocket close code
	 * @reason: (nullable): the close reason
	 *
	 * The session, once welcomed, has ended.
	 */
	signals[SIGNAL_CLOSED] = g_signal_new("closed",
					      G_TYPE_FROM_CLASS(klass),
					      G_SIGNAL_RUN_LAST,
					      0,
					      NULL,
					      NULL,
					      NULL,
					      G_TYPE_NONE,
					      2,
					      G_TYPE_UINT,
					      G_TYPE_STRING);
}

static void
codechat_connection_init(CodechatConnection *self)
{
	self->pending =
	    g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)pending_free);
	self->close_tasks = g_ptr_array_new_with_free_func(g_object_unref);
}

/**
 * codechat_connection_new:
 * @uri: a `ws://` or `wss://` URL
 * @nick: the nick to say hello with
 * @token: (nullable): the account's token
 */
CodechatConnection *
codechat_connection_new(const gchar *uri, const gchar *nick, const gchar *token)
{
	g_return_val_if_fail(uri != NULL, NULL);
	g_return_val_if_fail(nick != NULL, NULL);

	return g_object_new(CODECHAT_TYPE_CONNECTION,
			    "uri",
			    uri,
			    "nick",
			    nick,
			    "token",
			    token,
			    NULL);
}
