#include "todoclient.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QNetworkReply>
#include <QUrl>

#include <cstdio>

namespace {

// One compact JSON document per line, flushed at once: whoever reads the pipe (the e2e test) sees each
// event as it happens rather than when a buffer fills.
void printLine(const QJsonObject &object)
{
    const QByteArray line = QJsonDocument(object).toJson(QJsonDocument::Compact) + '\n';
    std::fwrite(line.constData(), 1, size_t(line.size()), stdout);
    std::fflush(stdout);
}

void logLine(const QString &message)
{
    std::fprintf(stderr, "qt-todo: %s\n", qUtf8Printable(message));
}

} // namespace

TodoClient::TodoClient(const QString &baseUrl, const QString &backendId, const QString &username,
                       const QString &password, QObject *parent)
    : QObject(parent)
    , m_baseUrl(baseUrl.endsWith('/') ? baseUrl.chopped(1) : baseUrl)
    , m_backendId(backendId.toUtf8())
    , m_username(username)
    , m_password(password)
{
    m_network.setTransferTimeout(15000); // a server that stops answering is an error, not a hang
    connect(&m_socket, &QWebSocket::connected, this, [this] {
        m_connected = true;
        logLine(QStringLiteral("socket open"));
        // List only now: a change committed from here on is either in the listing or arrives on the socket.
        listTodos();
    });
    connect(&m_socket, &QWebSocket::textMessageReceived, this, &TodoClient::onMessage);
    connect(&m_socket, QOverload<QAbstractSocket::SocketError>::of(&QWebSocket::error), this, [this] {
        if (!m_connected)
            fail(QStringLiteral("websocket: %1").arg(m_socket.errorString()));
    });
    connect(&m_socket, &QWebSocket::disconnected, this, [this] {
        if (!m_connected)
            return fail(QStringLiteral("websocket: %1").arg(m_socket.errorString()));
        const QString why = QStringLiteral("socket closed (code %1 %2)").arg(m_socket.closeCode()).arg(m_socket.closeReason());
        // Closed before we were ready: the server refused the socket (say, a used or expired URI).
        if (!m_listed)
            return fail(why);
        logLine(why);
        finish(0);
    });
}

// Step 1: sign in with the OAuth2 password grant of EDS.
void TodoClient::start()
{
    QNetworkRequest req = request(QStringLiteral("/v1/auth/oauth2/token"));
    req.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/x-www-form-urlencoded"));
    // Percent-encode each value ourselves: QUrlQuery leaves '+' and friends alone, which a form decoder
    // would read as a space.
    const QByteArray form = "grant_type=password&username=" + QUrl::toPercentEncoding(m_username)
                            + "&password=" + QUrl::toPercentEncoding(m_password);
    expectJson(m_network.post(req, form), QStringLiteral("sign-in"), [this](const QJsonObject &reply) {
        m_accessToken = reply.value(QStringLiteral("access_token")).toString().toUtf8();
        if (m_accessToken.isEmpty())
            return fail(QStringLiteral("sign-in: no access_token in the reply"));
        logLine(QStringLiteral("signed in as %1").arg(m_username));
        requestSocketUri();
    });
}

// Step 2: trade the EDS token for a one-time socket URI. The gateway verifies the token and tags the socket
// with the user and their groups, which is how the server knows which changes this socket may see.
void TodoClient::requestSocketUri()
{
    expectJson(m_network.get(request(QStringLiteral("/v1/websocket_uri"))), QStringLiteral("websocket_uri"),
               [this](const QJsonObject &reply) {
                   const QUrl uri(reply.value(QStringLiteral("uri")).toString());
                   if (!uri.isValid() || uri.isEmpty())
                       return fail(QStringLiteral("websocket_uri: no uri in the reply"));
                   m_socket.open(uri);
               });
}

// Step 3: load the model once the socket is open.
void TodoClient::listTodos()
{
    expectJson(m_network.get(request(QStringLiteral("/v1/objects/todos"))), QStringLiteral("list todos"),
               [this](const QJsonObject &reply) {
                   m_todos.clear();
                   for (const QJsonValue &value : reply.value(QStringLiteral("results")).toArray()) {
                       const QJsonObject todo = value.toObject();
                       m_todos.insert(todo.value(QStringLiteral("id")).toString(), todo);
                   }
                   // Changes that raced the listing: replaying them is safe, apply() ignores stale ones.
                   for (const QJsonObject &message : qAsConst(m_early))
                       apply(message);
                   m_early.clear();
                   m_listed = true;
                   printLine({{QStringLiteral("list"), m_todos.size()}});
                   printLine({{QStringLiteral("ready"), true}});
               });
}

// Step 4: each frame is `{"object":{...},"meta":{"backendId","eventName","userId",...}}`.
void TodoClient::onMessage(const QString &text)
{
    const QJsonDocument doc = QJsonDocument::fromJson(text.toUtf8());
    if (!doc.isObject())
        return logLine(QStringLiteral("ignoring a frame that is not a JSON object: %1").arg(text));
    const QJsonObject message = doc.object();
    printLine(message);
    if (!m_listed)
        return m_early.append(message);
    apply(message);
    printLine({{QStringLiteral("todos"), m_todos.size()}});
}

void TodoClient::apply(const QJsonObject &message)
{
    const QJsonObject todo = message.value(QStringLiteral("object")).toObject();
    const QString event = message.value(QStringLiteral("meta")).toObject().value(QStringLiteral("eventName")).toString();
    const QString id = todo.value(QStringLiteral("id")).toString();
    // The socket carries every change of the backend this user may read; the model holds only todos.
    if (todo.value(QStringLiteral("objectType")).toString() != QLatin1String("objects.todos") || id.isEmpty())
        return;
    if (event == QLatin1String("delete")) {
        m_todos.remove(id);
    } else if (event == QLatin1String("create") || event == QLatin1String("update")) {
        // Like EnginioModel: never replace a newer copy with an older one (ISO times compare as strings).
        const QString updatedAt = todo.value(QStringLiteral("updatedAt")).toString();
        const auto known = m_todos.constFind(id);
        if (known == m_todos.constEnd() || known->value(QStringLiteral("updatedAt")).toString() <= updatedAt)
            m_todos.insert(id, todo);
    } else {
        logLine(QStringLiteral("ignoring event %1").arg(event));
    }
}

QNetworkRequest TodoClient::request(const QString &path) const
{
    QNetworkRequest req(QUrl(m_baseUrl + path));
    req.setRawHeader("Accept", "application/json");
    req.setRawHeader("Enginio-Backend-Id", m_backendId);
    if (!m_accessToken.isEmpty())
        req.setRawHeader("Authorization", "Bearer " + m_accessToken);
    return req;
}

// Any 2xx with a JSON object body goes to onSuccess; anything else ends the program with the server's answer.
void TodoClient::expectJson(QNetworkReply *reply, const QString &what, const JsonHandler &onSuccess)
{
    connect(reply, &QNetworkReply::finished, this, [this, reply, what, onSuccess] {
        reply->deleteLater();
        const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
        const QByteArray body = reply->readAll();
        if (status == 0)
            return fail(QStringLiteral("%1: %2").arg(what, reply->errorString()));
        if (status < 200 || status > 299)
            return fail(QStringLiteral("%1: HTTP %2 %3").arg(what).arg(status).arg(QString::fromUtf8(body)));
        const QJsonDocument doc = QJsonDocument::fromJson(body);
        if (!doc.isObject())
            return fail(QStringLiteral("%1: HTTP %2 but not a JSON object: %3").arg(what).arg(status).arg(QString::fromUtf8(body)));
        onSuccess(doc.object());
    });
}

void TodoClient::fail(const QString &message)
{
    logLine(message);
    finish(1);
}

void TodoClient::finish(int exitCode)
{
    if (m_done)
        return;
    m_done = true;
    emit finished(exitCode);
}
