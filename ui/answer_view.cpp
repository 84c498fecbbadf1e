// AnswerView: conversation as rich text; phrases are links "phrase:<row>" styled in mask colours.
#include "ui/answer_view.h"

#include "ui/phrase_list_model.h"

#include <QItemSelectionModel>
#include <QRegularExpression>
#include <QScrollBar>
#include <QUrl>

namespace {

const QString kPhraseScheme = QStringLiteral("phrase");

// The streamed raw text without GLaMM's markup, for display while generating.
QString stripMarkup(QString text) {
    text.replace(QRegularExpression(QStringLiteral("<p>\\s*")), QString());
    text.replace(QRegularExpression(QStringLiteral("\\s*</p>")), QString());
    text.replace(QRegularExpression(QStringLiteral("\\s*\\[SEG\\]")), QString());
    return text.trimmed();
}

QString rgba(const QColor& c, int alpha) {
    return QStringLiteral("rgba(%1,%2,%3,%4)").arg(c.red()).arg(c.green()).arg(c.blue()).arg(alpha);
}

} // namespace

AnswerView::AnswerView(QWidget* parent) : QTextBrowser(parent) {
    setOpenLinks(false);
    setOpenExternalLinks(false);
    setPlaceholderText(tr("Open an image, then ask about it. Drawn boxes become region prompts."));
    connect(this, &QTextBrowser::highlighted, this, [this](const QUrl& url) {
        emit phraseHovered(url.scheme() == kPhraseScheme ? url.path().toInt() : -1);
    });
    connect(this, &QTextBrowser::anchorClicked, this, [this](const QUrl& url) {
        if (url.scheme() != kPhraseScheme || !selection_ || !model_) return;
        const int row = url.path().toInt();
        selection_->setCurrentIndex(model_->index(row), QItemSelectionModel::ClearAndSelect);
    });
}

void AnswerView::setPhraseModel(PhraseListModel* model, QItemSelectionModel* selection) {
    model_     = model;
    selection_ = selection;
    connect(selection_, &QItemSelectionModel::selectionChanged, this, [this] { render(); });
}

void AnswerView::beginAnswer(const QString& question) {
    for (Turn& t : turns_) t.phrases.clear(); // only the latest answer keeps its masks
    Turn turn;
    turn.question = question;
    turn.pending  = true;
    turns_.push_back(turn);
    streamed_.clear();
    render();
}

void AnswerView::appendToken(const QString& delta) {
    if (turns_.isEmpty() || !turns_.back().pending) return;
    streamed_ += delta;
    turns_.back().answer = stripMarkup(streamed_);
    render();
}

void AnswerView::finishAnswer(const StudioAnswer& answer) {
    if (turns_.isEmpty() || !turns_.back().pending) beginAnswer(answer.question);
    Turn& turn     = turns_.back();
    turn.pending   = false;
    turn.answer    = answer.text;
    turn.phrases   = answer.phrases;
    turn.cancelled = answer.cancelled;
    if (answer.forced) turn.note = tr("(scored: the model keeps no teacher-forced turn)");
    render();
}

void AnswerView::abandonAnswer(const QString& why) {
    if (turns_.isEmpty() || !turns_.back().pending) return;
    turns_.back().pending = false;
    turns_.back().note    = why;
    render();
}

void AnswerView::clearConversation() {
    turns_.clear();
    streamed_.clear();
    render();
}

int AnswerView::phraseRowAt(int offset) const {
    if (turns_.isEmpty()) return -1;
    const auto& phrases = turns_.back().phrases;
    for (int row = 0; row < phrases.size(); ++row)
        if (phrases[row].begin >= 0 && offset >= phrases[row].begin && offset < phrases[row].end)
            return row;
    return -1;
}

QString AnswerView::conversationText() const {
    QString out;
    for (const Turn& t : turns_) {
        out += tr("User: %1\n").arg(t.question);
        out += tr("GLaMM: %1\n\n").arg(t.answer);
    }
    return out;
}

QString AnswerView::answerHtml(const Turn& turn, bool linked) const {
    if (!linked || turn.phrases.isEmpty()) return turn.answer.toHtmlEscaped();
    int selectedRow = -1;
    if (selection_ && selection_->hasSelection())
        selectedRow = selection_->selectedRows().value(0).row();
    QString html;
    int at = 0;
    // Phrases come in text order from the engine; bare-mask rows (begin < 0) have no span.
    for (int row = 0; row < turn.phrases.size(); ++row) {
        const GroundedPhrase& p = turn.phrases[row];
        if (p.begin < at || p.end > turn.answer.size()) continue;
        html += turn.answer.mid(at, p.begin - at).toHtmlEscaped();
        const QString span = turn.answer.mid(p.begin, p.end - p.begin).toHtmlEscaped();
        if (p.mask < 0) {
            html += QStringLiteral("<b>%1</b>").arg(span);
        } else {
            const bool selected = row == selectedRow;
            html += QStringLiteral("<a href=\"%1:%2\" style=\"color:%3; background-color:%4; "
                                   "font-weight:600; text-decoration:%5;\">%6</a>")
                        .arg(kPhraseScheme)
                        .arg(row)
                        .arg(p.color.darker(selected ? 160 : 135).name())
                        .arg(rgba(p.color, selected ? 150 : 70))
                        .arg(selected ? QStringLiteral("underline") : QStringLiteral("none"))
                        .arg(span);
        }
        at = p.end;
    }
    html += turn.answer.mid(at).toHtmlEscaped();
    return html;
}

void AnswerView::render() {
    QString html = QStringLiteral("<html><body style=\"font-size:11pt;\">");
    for (int i = 0; i < turns_.size(); ++i) {
        const Turn& t     = turns_[i];
        const bool latest = i == turns_.size() - 1;
        html += QStringLiteral("<p style=\"margin-bottom:2px; color:#555;\"><b>%1</b> %2</p>")
                    .arg(tr("You:"),
                         t.question.isEmpty() ? tr("<i>(preset)</i>") : t.question.toHtmlEscaped());
        QString body = answerHtml(t, latest);
        if (t.pending) body += QStringLiteral(" <span style=\"color:#888;\">▍</span>");
        if (t.cancelled)
            body += QStringLiteral(" <i style=\"color:#a60;\">%1</i>").arg(tr("(stopped)"));
        if (!t.note.isEmpty())
            body += QStringLiteral(" <i style=\"color:#a00;\">%1</i>").arg(t.note.toHtmlEscaped());
        html += QStringLiteral("<p style=\"margin-top:0px; margin-bottom:12px; line-height:140%;\">"
                               "<b>%1</b> %2</p>")
                    .arg(tr("GLaMM:"), body);
    }
    html += QStringLiteral("</body></html>");
    const bool atEnd = verticalScrollBar()->value() == verticalScrollBar()->maximum();
    setHtml(html);
    if (atEnd) verticalScrollBar()->setValue(verticalScrollBar()->maximum());
}
