/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codechat-counting-stream.h"
#include "codechat-log.h"
#include "codechat-server.h"
#include "codechat-version.h"

/*
 * Connections that have not finished their HTTP request yet.  libsoup
 * 3.2's SoupServer has no timeout of its own: a client that opens a TCP
 * connection and sends nothing, or half a request, keeps it forever.
 * SoupServer emits request-started as soon as it waits for a request on a
 * connection (the first one after accept, and each further one of a
 * keep-alive connection) and request-read once the request is complete,
 * so the time in between is bounded here: past the handshake timeout the
 * socket is shut down, and libsoup, reading EOF, drops the connection.
 * Past max_pending such connections the oldest one goes, so a flood of
 * idle connections costs a bounded number of descriptors and never keeps
 * a client that sends its request at once from being served.
 */
typedef struct {
	gint ref_count;
	GQueue pending;	   /* (element-type Pending) unowned, oldest first */
	guint timeout;	   /* seconds, 0 for none */
	guint max_pending; /* 0 for no limit */
	guint64 n_dropped; /* for the tests and the logs */
	guint timer_id;	   /* GSource id, 0 if none; holds a reference */
} Handshakes;

typedef struct {
	Handshakes *hs;	 /* (owned) */
	GSocket *socket; /* (owned) */
	GList link;	 /* in hs->pending while waiting */
	gint64 deadline; /* monotonic */
	gboolean queued;
} Pending;

struct _CodechatServer {
	GObject parent_instance;
	SoupServer *soup;	/* (owned) */
	CodechatHub *hub;	/* (owned) */
	GStrv allowed_origins;	/* (owned) */
	gchar *uri;		/* (owned) (nullable) ws:// or wss:// URI once listening */
	gboolean tls;		/* a certificate is set: listen for https and wss */
	gint64 started_us;	/* monotonic */
	gpointer deflate_class; /* (owned) (nullable) SoupWebsocketExtensionDeflateClass */
	Handshakes *handshakes; /* (owned) */
	CodechatWsGroup *ws;	/* (owned) the WebSocket connections */
};

G_DEFINE_FINAL_TYPE(CodechatServer, codechat_server, G_TYPE_OBJECT)

/* the kernel caps it at net.core.somaxconn (4096 since Linux 5.4) */
#define CODECHAT_LISTEN_BACKLOG 4096

static gchar *
peer_string(SoupServerMessage *msg)
{
	GSocketAddress *addr = soup_server_message_get_remote_address(msg);
	g_autofree gchar *host = NULL;

	if (!G_IS_INET_SOCKET_ADDRESS(addr))
		return g_strdup("unknown");
	host = g_inet_address_to_string(
	    g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(addr)));
	return g_strdup_printf("%s:%u",
			       host,
			       g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(addr)));
}

/*
 * The WebSocket handshake is done here with libsoup's public functions,
 * not by soup_server_add_websocket_handler(), so that the connection can
 * be built over a CodechatCountingStream: the hub then knows how much of
 * what it sent still waits in libsoup's unbounded queue (slow readers).
 */
typedef struct {
	CodechatServer *server; /* (owned) */
	GList *extensions;	/* (owned) (element-type SoupWebsocketExtension) */
	gboolean done;
} Upgrade;

static void
upgrade_free(gpointer data)
{
	Upgrade *up = data;

	g_clear_object(&up->server);
	g_list_free_full(up->extensions, g_object_unref);
	g_free(up);
}

static void
upgrade_complete(Upgrade *up, SoupServerMessage *msg)
{
	CodechatServer *self = up->server;
	SoupMessageHeaders *request_headers = soup_server_message_get_request_headers(msg);
	SoupMessageHeaders *response_headers = soup_server_message_get_response_headers(msg);
	g_autoptr(GUri) uri = g_uri_ref(soup_server_message_get_uri(msg));
	g_autofree gchar *peer = peer_string(msg);
	g_autofree gchar *origin =
	    g_strdup(soup_message_headers_get_one(request_headers, "Origin"));
	g_autofree gchar *protocol =
	    g_strdup(soup_message_headers_get_one(response_headers, "Sec-WebSocket-Protocol"));
	g_autoptr(GIOStream) stolen = NULL;
	g_autoptr(CodechatCountingStream) counting = NULL;
	g_autoptr(SoupWebsocketConnection) soup = NULL;
	g_autoptr(CodechatWsConn) conn = NULL;
	GSocket *socket;

	stolen = soup_server_message_steal_connection(msg);
	if (stolen == NULL)
		return;
	socket = g_object_get_data(G_OBJECT(stolen), "GSocket");
	/* plain WebSocket: codechat's own framing on the socket */
	if (socket != NULL && !self->tls && up->extensions == NULL) {
		g_autoptr(GError) error = NULL;

		conn = codechat_ws_conn_new_raw(self->ws, stolen, socket, &error);
		if (conn == NULL) {
			codechat_warning(CODECHAT_LOG_FIELDS(.peer = peer),
					 "dropping the connection from %s: %s",
					 peer,
					 error->message);
			return;
		}
		codechat_hub_add_connection(self->hub, conn, peer);
		return;
	}
	counting = codechat_counting_stream_new(stolen);
	/* libsoup hangs the socket on the stream it hands out; the connection
	 * needs it to write close codes that libsoup 3.2 refuses (1013) */
	if (socket != NULL)
		g_object_set_data_full(G_OBJECT(counting),
				       "GSocket",
				       g_object_ref(socket),
				       g_object_unref);
	/* over TLS, bytes written to the socket itself would break the
	 * record stream: the hub must not write close frames there */
	if (self->tls)
		g_object_set_data(G_OBJECT(counting), "codechat-tls", GINT_TO_POINTER(TRUE));
	soup = soup_websocket_connection_new(G_IO_STREAM(counting),
					     uri,
					     SOUP_WEBSOCKET_CONNECTION_SERVER,
					     origin,
					     protocol,
					     g_steal_pointer(&up->extensions));
	/* with permessage-deflate what is written is compressed and cannot
	 * be set against what was handed: no bound on the queue then */
	conn = codechat_ws_conn_new_soup(self->ws, soup, up->extensions == NULL ? counting : NULL);
	/* the hub keeps its own reference */
	codechat_hub_add_connection(self->hub, conn, peer);
}

/* the 101 response is out: from here on the stream speaks WebSocket */
static void
upgrade_wrote_informational_cb(SoupServerMessage *msg, gpointer user_data)
{
	Upgrade *up = user_data;

	if (up->done)
		return;
	up->done = TRUE;
	/* stealing the connection may free the message */
	g_object_ref(msg);
	upgrade_complete(up, msg);
	g_object_unref(msg);
}

static void
ws_http_cb(SoupServer *soup,
	   SoupServerMessage *msg,
	   const char *path,
	   GHashTable *query,
	   gpointer user_data)
{
	CodechatServer *self = CODECHAT_SERVER(user_data);
	const gchar *origin =
	    soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Origin");

	if (origin != NULL &&
	    (self->allowed_origins == NULL ||
	     !g_strv_contains((const gchar *const *)self->allowed_origins, origin))) {
		g_autofree gchar *peer = peer_string(msg);
		codechat_message(CODECHAT_LOG_FIELDS(.peer = peer),
				 "refusing a WebSocket from %s: origin %s is not allowed",
				 peer,
				 origin);
		soup_server_message_set_status(msg, SOUP_STATUS_FORBIDDEN, NULL);
		soup_server_message_set_response(msg,
						 "text/plain",
						 SOUP_MEMORY_STATIC,
						 "origin not allowed\n",
						 strlen("origin not allowed\n"));
		return;
	}
	{
		const gchar *protocols[] = {CODECHAT_SUBPROTOCOL, NULL};
		g_autoptr(GPtrArray) supported = g_ptr_array_new();
		Upgrade *up = g_new0(Upgrade, 1);

		/* compressing per recipient costs CPU on every broadcast: opt in */
		if (self->deflate_class != NULL)
			g_ptr_array_add(supported, self->deflate_class);
		/* on failure it sets the error response itself (400) */
		if (!soup_websocket_server_process_handshake(msg,
							     NULL,
							     (char **)protocols,
							     supported,
							     &up->extensions)) {
			upgrade_free(up);
			return;
		}
		up->server = g_object_ref(self);
		g_signal_connect_data(msg,
				      "wrote-informational",
				      G_CALLBACK(upgrade_wrote_informational_cb),
				      up,
				      (GClosureNotify)(void (*)(void))upgrade_free,
				      0);
	}
}

static Handshakes *
handshakes_ref(Handshakes *hs)
{
	hs->ref_count++;
	return hs;
}

static void
handshakes_unref(Handshakes *hs)
{
	if (--hs->ref_count > 0)
		return;
	g_assert(g_queue_is_empty(&hs->pending));
	g_free(hs);
}

static void
pending_dequeue(Pending *p)
{
	if (p->queued) {
		g_queue_unlink(&p->hs->pending, &p->link);
		p->queued = FALSE;
	}
}

static void
pending_free(gpointer data)
{
	Pending *p = data;

	pending_dequeue(p);
	g_clear_object(&p->socket);
	handshakes_unref(p->hs);
	g_free(p);
}

/* libsoup reads EOF and drops the connection */
static void
pending_drop(Pending *p, const gchar *why)
{
	g_autoptr(GSocketAddress) addr = g_socket_get_remote_address(p->socket, NULL);
	g_autofree gchar *peer = NULL;

	if (G_IS_INET_SOCKET_ADDRESS(addr)) {
		g_autofree gchar *host = g_inet_address_to_string(
		    g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(addr)));
		peer = g_strdup_printf("%s:%u",
				       host,
				       g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(addr)));
	}
	/* debug only: under a flood, a line per connection would be a
	 * flood of its own */
	codechat_debug(CODECHAT_LOG_FIELDS(.peer = peer),
		       "dropping the connection from %s: %s",
		       peer != NULL ? peer : "unknown",
		       why);
	pending_dequeue(p);
	p->hs->n_dropped++;
	g_socket_shutdown(p->socket, TRUE, TRUE, NULL);
}

static void
handshakes_arm(Handshakes *hs);

static gboolean
handshakes_timeout_cb(gpointer user_data)
{
	Handshakes *hs = user_data;
	gint64 now = g_get_monotonic_time();
	Pending *p;

	hs->timer_id = 0;
	while ((p = g_queue_peek_head(&hs->pending)) != NULL && p->deadline <= now)
		pending_drop(p, "no complete HTTP request in time");
	handshakes_arm(hs);
	return G_SOURCE_REMOVE;
}

/* one timer for the oldest connection still sending its request: they
 * all wait as long, so the queue is in deadline order */
static void
handshakes_arm(Handshakes *hs)
{
	Pending *p = g_queue_peek_head(&hs->pending);
	gint64 wait_ms;

	if (hs->timer_id != 0 || p == NULL || p->deadline == G_MAXINT64)
		return;
	wait_ms = (p->deadline - g_get_monotonic_time() + 999) / 1000;
	hs->timer_id = g_timeout_add_full(G_PRIORITY_DEFAULT,
					  (guint)CLAMP(wait_ms, 0, G_MAXUINT),
					  handshakes_timeout_cb,
					  handshakes_ref(hs),
					  (GDestroyNotify)handshakes_unref);
}

/* in deadline order, which is the order of arrival unless a reload
 * shortened the timeout: the place is almost always the tail */
static void
pending_enqueue(Handshakes *hs, Pending *p)
{
	GList *after = g_queue_peek_tail_link(&hs->pending);

	while (after != NULL && ((Pending *)after->data)->deadline > p->deadline)
		after = after->prev;
	if (after != NULL) {
		g_queue_insert_after_link(&hs->pending, after, &p->link);
	} else {
		/* the new head: the timer may be set for a later deadline */
		g_queue_push_head_link(&hs->pending, &p->link);
		g_clear_handle_id(&hs->timer_id, g_source_remove);
	}
}

#define PENDING_KEY "codechat-pending"

static void
request_started_cb(SoupServer *soup, SoupServerMessage *msg, gpointer user_data)
{
	CodechatServer *self = CODECHAT_SERVER(user_data);
	Handshakes *hs = self->handshakes;
	GSocket *socket = soup_server_message_get_socket(msg);
	Pending *p;

	if (socket == NULL || (hs->timeout == 0 && hs->max_pending == 0))
		return;
	if (hs->max_pending > 0 && hs->pending.length >= hs->max_pending)
		pending_drop(g_queue_peek_head(&hs->pending),
			     "too many connections without a complete HTTP request");
	p = g_new0(Pending, 1);
	p->hs = handshakes_ref(hs);
	p->socket = g_object_ref(socket);
	p->link.data = p;
	/* without a timeout (max_pending alone) it waits for ever, even if a
	 * reload sets one later */
	p->deadline = hs->timeout == 0
			  ? G_MAXINT64
			  : g_get_monotonic_time() + (gint64)hs->timeout * G_USEC_PER_SEC;
	pending_enqueue(hs, p);
	p->queued = TRUE;
	handshakes_arm(hs);
	g_object_set_data_full(G_OBJECT(msg), PENDING_KEY, p, pending_free);
}

static void
request_read_cb(SoupServer *soup, SoupServerMessage *msg, gpointer user_data)
{
	g_object_set_data(G_OBJECT(msg), PENDING_KEY, NULL);
}

/* also at a reload: the timeout applies to connections from then on */
void
codechat_server_set_handshake_limits(CodechatServer *self, guint timeout, guint max_pending)
{
	g_return_if_fail(CODECHAT_IS_SERVER(self));
	self->handshakes->timeout = timeout;
	self->handshakes->max_pending = max_pending;
}

/* also at a reload: handshakes from then on are checked against them */
void
codechat_server_set_allowed_origins(CodechatServer *self, const gchar *const *allowed_origins)
{
	g_return_if_fail(CODECHAT_IS_SERVER(self));
	g_strfreev(self->allowed_origins);
	self->allowed_origins = g_strdupv((gchar **)allowed_origins);
}

/* read-only endpoints: anything but GET and HEAD gets 405 */
static gboolean
refuse_unless_get(SoupServerMessage *msg)
{
	const gchar *method = soup_server_message_get_method(msg);

	if (g_strcmp0(method, "GET") == 0 || g_strcmp0(method, "HEAD") == 0)
		return FALSE;
	soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
	soup_message_headers_replace(soup_server_message_get_response_headers(msg),
				     "Allow",
				     "GET, HEAD");
	return TRUE;
}

static void
healthz_cb(SoupServer *soup,
	   SoupServerMessage *msg,
	   const char *path,
	   GHashTable *query,
	   gpointer user_data)
{
	CodechatServer *self = CODECHAT_SERVER(user_data);
	g_autoptr(JsonBuilder) builder = NULL;
	gchar *body;

	if (refuse_unless_get(msg))
		return;
	builder = json_builder_new_immutable();
	json_builder_begin_object(builder);
	json_builder_set_member_name(builder, "status");
	json_builder_add_string_value(builder, "ok");
	json_builder_set_member_name(builder, "version");
	json_builder_add_string_value(builder, codechat_version());
	json_builder_set_member_name(builder, "connections");
	json_builder_add_int_value(builder, codechat_hub_get_n_connections(self->hub));
	json_builder_set_member_name(builder, "rooms");
	json_builder_add_int_value(builder, codechat_hub_get_n_rooms(self->hub));
	json_builder_set_member_name(builder, "uptime_s");
	json_builder_add_int_value(builder,
				   (g_get_monotonic_time() - self->started_us) / G_USEC_PER_SEC);
	json_builder_end_object(builder);
	body = codechat_builder_to_string(builder);
	soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
	soup_server_message_set_response(msg,
					 "application/json",
					 SOUP_MEMORY_TAKE,
					 body,
					 strlen(body));
}

static void
collect_room_cb(const gchar *name, guint n_members, gpointer user_data)
{
	GArray *rooms = user_data;
	CodechatMetricsRoom room = {name, n_members};

	g_array_append_val(rooms, room);
}

static gint
compare_metrics_rooms(gconstpointer a, gconstpointer b)
{
	return strcmp(((const CodechatMetricsRoom *)a)->name,
		      ((const CodechatMetricsRoom *)b)->name);
}

/*
 * Prometheus text format for the admin's scraper.  Served like /healthz on
 * every listener; it names the rooms, so beyond trusted networks it
 * belongs behind a firewall or a proxy (codechatd(8)).
 */
static void
metrics_cb(SoupServer *soup,
	   SoupServerMessage *msg,
	   const char *path,
	   GHashTable *query,
	   gpointer user_data)
{
	CodechatServer *self = CODECHAT_SERVER(user_data);
	g_autoptr(GArray) rooms = NULL;
	CodechatMetricsGauges gauges = {0};
	GString *text;
	gsize len;

	if (refuse_unless_get(msg))
		return;
	rooms = g_array_new(FALSE, FALSE, sizeof(CodechatMetricsRoom));
	/* the names stay the hub's: nothing runs in between */
	codechat_hub_foreach_room(self->hub, collect_room_cb, rooms);
	g_array_sort(rooms, compare_metrics_rooms);
	gauges.connections = codechat_hub_get_n_connections(self->hub);
	gauges.rooms = codechat_hub_get_n_rooms(self->hub);
	gauges.uptime_seconds =
	    (gdouble)(g_get_monotonic_time() - self->started_us) / G_USEC_PER_SEC;
	gauges.version = codechat_version();
	gauges.by_room = (const CodechatMetricsRoom *)(gpointer)rooms->data;
	gauges.n_by_room = rooms->len;
	{
		/* the transport counts frames for every connection at once */
		CodechatMetrics *metrics = codechat_hub_get_metrics(self->hub);
		CodechatWsCounters *counters = codechat_ws_group_get_counters(self->ws);

		metrics->frames_in = counters->frames_in;
		metrics->bytes_in = counters->bytes_in;
		metrics->frames_out = counters->frames_out;
		metrics->bytes_out = counters->bytes_out;
		text = codechat_metrics_render(metrics, &gauges);
	}
	len = text->len;
	soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
	soup_server_message_set_response(msg,
					 CODECHAT_METRICS_CONTENT_TYPE,
					 SOUP_MEMORY_TAKE,
					 g_string_free(text, FALSE),
					 len);
}

/* ADDR:PORT with an IPv4 or [IPv6] literal, or localhost */
static GSocketAddress *
parse_address(const gchar *address, GError **error)
{
	g_autofree gchar *host = NULL;
	g_autoptr(GInetAddress) inet = NULL;
	const gchar *port_str;
	guint64 port = 0;

	if (address[0] == '[') {
		const gchar *end = strchr(address, ']');
		if (end == NULL || end[1] != ':') {
			g_set_error(error,
				    G_IO_ERROR,
				    G_IO_ERROR_INVALID_ARGUMENT,
				    _("cannot parse listen address %s: expected [ADDR]:PORT"),
				    address);
			return NULL;
		}
		host = g_strndup(address + 1, end - address - 1);
		port_str = end + 2;
	} else {
		const gchar *colon = strrchr(address, ':');
		if (colon == NULL) {
			g_set_error(error,
				    G_IO_ERROR,
				    G_IO_ERROR_INVALID_ARGUMENT,
				    _("cannot parse listen address %s: expected ADDR:PORT"),
				    address);
			return NULL;
		}
		host = g_strndup(address, colon - address);
		port_str = colon + 1;
	}
	if (!g_ascii_string_to_unsigned(port_str, 10, 0, 65535, &port, NULL)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_ARGUMENT,
			    _("invalid port in listen address %s"),
			    address);
		return NULL;
	}
	if (g_strcmp0(host, "localhost") == 0)
		inet = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	else if (host[0] == '\0')
		inet = g_inet_address_new_any(G_SOCKET_FAMILY_IPV4);
	else
		inet = g_inet_address_new_from_string(host);
	if (inet == NULL) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_ARGUMENT,
			    _("%s is not an IP address (use e.g. 127.0.0.1:7373 or [::1]:7373)"),
			    host);
		return NULL;
	}
	return g_inet_socket_address_new(inet, (guint16)port);
}

static gboolean
accept_any_certificate_cb(GTlsConnection *conn,
			  GTlsCertificate *peer_cert,
			  GTlsCertificateFlags errors,
			  gpointer user_data)
{
	return TRUE;
}

static gpointer
client_handshake_thread(gpointer user_data)
{
	GTlsConnection *client = user_data;
	GError *error = NULL;

	if (!g_tls_connection_handshake(client, NULL, &error)) {
		/* the server sees the end of the stream and gives up too */
		g_io_stream_close(G_IO_STREAM(client), NULL, NULL);
		return error;
	}
	return NULL;
}

static GIOStream *
stream_from_fd(gint fd, GError **error)
{
	g_autoptr(GSocket) socket = g_socket_new_from_fd(fd, error);

	if (socket == NULL) {
		close(fd);
		return NULL;
	}
	/* the check below must end even when one side stops answering */
	g_socket_set_timeout(socket, 5);
	return G_IO_STREAM(g_socket_connection_factory_create_connection(socket));
}

/*
 * glib-networking takes a key that does not belong to the certificate
 * without a word, and every handshake fails afterwards: shake hands with
 * ourselves once over a socket pair so that such a pair is refused at
 * startup, where the message can name the files
 */
static gboolean
check_key_matches(GTlsCertificate *certificate, GError **error)
{
	g_autoptr(GIOStream) server_stream = NULL;
	g_autoptr(GIOStream) client_stream = NULL;
	g_autoptr(GIOStream) server = NULL;
	g_autoptr(GIOStream) client = NULL;
	g_autoptr(GError) server_error = NULL;
	g_autoptr(GError) client_error = NULL;
	GThread *thread;
	gint fds[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
		gint saved_errno = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(saved_errno),
			    "socketpair: %s",
			    g_strerror(saved_errno));
		return FALSE;
	}
	server_stream = stream_from_fd(fds[0], error);
	if (server_stream == NULL) {
		close(fds[1]);
		return FALSE;
	}
	client_stream = stream_from_fd(fds[1], error);
	if (client_stream == NULL)
		return FALSE;
	server = g_tls_server_connection_new(server_stream, certificate, error);
	if (server == NULL)
		return FALSE;
	client = g_tls_client_connection_new(client_stream, NULL, error);
	if (client == NULL)
		return FALSE;
	g_signal_connect(client, "accept-certificate", G_CALLBACK(accept_any_certificate_cb), NULL);

	thread = g_thread_new("codechatd-tls-check", client_handshake_thread, client);
	if (!g_tls_connection_handshake(G_TLS_CONNECTION(server), NULL, &server_error))
		g_io_stream_close(server, NULL, NULL);
	client_error = g_thread_join(thread);
	/* the client's side says why ("signature verification has failed"),
	 * the server's often only that the client hung up */
	if (client_error != NULL) {
		g_propagate_error(error, g_steal_pointer(&client_error));
		return FALSE;
	}
	if (server_error != NULL) {
		g_propagate_error(error, g_steal_pointer(&server_error));
		return FALSE;
	}
	return TRUE;
}

/**
 * codechat_server_set_tls_files:
 * @cert_path: a PEM file with the certificate, maybe followed by its chain
 * @key_path: a PEM file with its private key
 *
 * Serves https:// and wss:// with this certificate from the next
 * codechat_server_listen() on.  Fails with a message that names the file
 * when a file cannot be read, holds no certificate or key, or the key
 * does not belong to the certificate; and when GIO has no TLS backend.
 */
gboolean
codechat_server_set_tls_files(CodechatServer *self,
			      const gchar *cert_path,
			      const gchar *key_path,
			      GError **error)
{
	g_autoptr(GTlsCertificate) certificate = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *contents = NULL;
	GList *chain;

	g_return_val_if_fail(CODECHAT_IS_SERVER(self), FALSE);
	g_return_val_if_fail(cert_path != NULL, FALSE);
	g_return_val_if_fail(key_path != NULL, FALSE);

	if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
		g_set_error_literal(error,
				    G_IO_ERROR,
				    G_IO_ERROR_NOT_SUPPORTED,
				    _("TLS is not available: GIO has no TLS backend (install "
				      "glib-networking)"));
		return FALSE;
	}
	/* read each file alone first, so that the message names the one at fault */
	if (!g_file_get_contents(cert_path, &contents, NULL, &error_local)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot read the TLS certificate %s: %s"),
			    cert_path,
			    error_local->message);
		return FALSE;
	}
	chain = g_tls_certificate_list_new_from_file(cert_path, &error_local);
	if (chain == NULL) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot load the TLS certificate %s: %s"),
			    cert_path,
			    error_local != NULL ? error_local->message
						: _("no PEM-encoded certificate found"));
		return FALSE;
	}
	g_list_free_full(chain, g_object_unref);
	g_clear_pointer(&contents, g_free);
	if (!g_file_get_contents(key_path, &contents, NULL, &error_local)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot read the TLS key %s: %s"),
			    key_path,
			    error_local->message);
		return FALSE;
	}
	certificate = g_tls_certificate_new_from_files(cert_path, key_path, &error_local);
	if (certificate == NULL) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("cannot load the TLS key %s: %s"),
			    key_path,
			    error_local->message);
		return FALSE;
	}
	if (!check_key_matches(certificate, &error_local)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FAILED,
			    _("the TLS key %s does not match the certificate %s: %s"),
			    key_path,
			    cert_path,
			    error_local->message);
		return FALSE;
	}
	g_object_set(self->soup, "tls-certificate", certificate, NULL);
	self->tls = TRUE;
	return TRUE;
}

gboolean
codechat_server_listen(CodechatServer *self, const gchar *address, GError **error)
{
	g_autoptr(GSocketAddress) addr = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GSocket) socket = NULL;
	GSList *listeners;

	g_return_val_if_fail(CODECHAT_IS_SERVER(self), FALSE);

	addr = parse_address(address, error);
	if (addr == NULL)
		return FALSE;
	/* our own socket, not soup_server_listen(): GSocket listens with a
	 * backlog of 10, and a burst of connections then waits for SYN
	 * retransmits (a second and more each) */
	socket = g_socket_new(g_socket_address_get_family(addr),
			      G_SOCKET_TYPE_STREAM,
			      G_SOCKET_PROTOCOL_TCP,
			      &error_local);
	if (socket != NULL) {
		g_socket_set_listen_backlog(socket, CODECHAT_LISTEN_BACKLOG);
		if (!g_socket_bind(socket, addr, TRUE, &error_local) ||
		    !g_socket_listen(socket, &error_local))
			g_clear_object(&socket);
	}
	if (socket == NULL || !soup_server_listen_socket(self->soup,
							 socket,
							 self->tls ? SOUP_SERVER_LISTEN_HTTPS : 0,
							 &error_local)) {
		g_set_error(error,
			    error_local->domain,
			    error_local->code,
			    _("cannot listen on %s: %s"),
			    address,
			    error_local->message);
		return FALSE;
	}
	/* not soup_server_get_uris(): it leaks an address in libsoup 3.2 */
	listeners = soup_server_get_listeners(self->soup);
	if (listeners != NULL) {
		g_autoptr(GSocketAddress) local =
		    g_socket_get_local_address(G_SOCKET(listeners->data), NULL);
		if (G_IS_INET_SOCKET_ADDRESS(local)) {
			GInetSocketAddress *inet = G_INET_SOCKET_ADDRESS(local);
			g_autofree gchar *host =
			    g_inet_address_to_string(g_inet_socket_address_get_address(inet));
			g_autoptr(GUri) ws = g_uri_build(G_URI_FLAGS_NONE,
							 self->tls ? "wss" : "ws",
							 NULL,
							 host,
							 g_inet_socket_address_get_port(inet),
							 CODECHAT_WS_PATH,
							 NULL,
							 NULL);
			g_free(self->uri);
			self->uri = g_uri_to_string(ws);
		}
	}
	g_slist_free(listeners);
	return TRUE;
}

const gchar *
codechat_server_get_uri(CodechatServer *self)
{
	g_return_val_if_fail(CODECHAT_IS_SERVER(self), NULL);
	return self->uri;
}

void
codechat_server_disconnect(CodechatServer *self)
{
	g_return_if_fail(CODECHAT_IS_SERVER(self));
	soup_server_disconnect(self->soup);
}

static void
codechat_server_finalize(GObject *object)
{
	CodechatServer *self = CODECHAT_SERVER(object);

	g_clear_object(&self->soup);
	g_clear_object(&self->hub);
	/* messages still alive keep their own reference */
	g_clear_handle_id(&self->handshakes->timer_id, g_source_remove);
	g_clear_pointer(&self->handshakes, handshakes_unref);
	g_clear_pointer(&self->ws, codechat_ws_group_free);
	g_clear_pointer(&self->deflate_class, g_type_class_unref);
	g_strfreev(self->allowed_origins);
	g_free(self->uri);
	G_OBJECT_CLASS(codechat_server_parent_class)->finalize(object);
}

static void
codechat_server_class_init(CodechatServerClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	object_class->finalize = codechat_server_finalize;
}

static void
codechat_server_init(CodechatServer *self)
{
	self->started_us = g_get_monotonic_time();
	{
		g_autoptr(GError) error = NULL;
		self->ws = codechat_ws_group_new(&error);
		if (self->ws == NULL)
			g_error("cannot set up the WebSocket connections: %s", error->message);
	}
	self->handshakes = g_new0(Handshakes, 1);
	self->handshakes->ref_count = 1;
	g_queue_init(&self->handshakes->pending);
	self->handshakes->timeout = CODECHAT_DEFAULT_HANDSHAKE_TIMEOUT;
	self->handshakes->max_pending = CODECHAT_DEFAULT_MAX_HANDSHAKES;
}

CodechatServer *
codechat_server_new(CodechatHub *hub,
		    const gchar *const *allowed_origins,
		    gboolean permessage_deflate)
{
	CodechatServer *self = g_object_new(CODECHAT_TYPE_SERVER, NULL);

	self->hub = g_object_ref(hub);
	self->allowed_origins = g_strdupv((gchar **)allowed_origins);
	if (permessage_deflate)
		self->deflate_class = g_type_class_ref(SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
	self->soup = soup_server_new("server-header", codechat_server_string(), NULL);
	g_signal_connect(self->soup, "request-started", G_CALLBACK(request_started_cb), self);
	g_signal_connect(self->soup, "request-read", G_CALLBACK(request_read_cb), self);
	/* the WebSocket handshake: see ws_http_cb() */
	soup_server_add_handler(self->soup, CODECHAT_WS_PATH, ws_http_cb, self, NULL);
	soup_server_add_handler(self->soup, "/healthz", healthz_cb, self, NULL);
	soup_server_add_handler(self->soup, "/metrics", metrics_cb, self, NULL);
	return self;
}
