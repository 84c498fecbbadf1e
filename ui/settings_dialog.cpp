// SettingsDialog: a form over ModelSettings, persisted in QSettings under "model/…".
#include "ui/settings_dialog.h"

#include "engine/session.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QStandardItemModel>

namespace {

QWidget* withBrowse(QLineEdit* edit, QPushButton* browse) {
    auto* row    = new QWidget;
    auto* layout = new QHBoxLayout(row);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(edit, 1);
    layout->addWidget(browse);
    return row;
}

} // namespace

SettingsDialog::SettingsDialog(QWidget* parent) : QDialog(parent) {
    setWindowTitle(tr("Model Settings"));
    modelDir_ = new QLineEdit;
    modelDir_->setPlaceholderText(tr("empty: the bundled GLaMM-Shapes model"));
    visionTowerDir_ = new QLineEdit;
    visionTowerDir_->setPlaceholderText(tr("from the model's config.json"));
    auto* browseModelButton = new QPushButton(tr("Browse…"));
    auto* browseClipButton  = new QPushButton(tr("Browse…"));
    connect(browseModelButton, &QPushButton::clicked, this, &SettingsDialog::browseModel);
    connect(browseClipButton, &QPushButton::clicked, this, &SettingsDialog::browseVisionTower);
    connect(modelDir_, &QLineEdit::textChanged, this, &SettingsDialog::updateCheck);

    device_ = new QComboBox;
    device_->addItem(tr("CPU"), QStringLiteral("cpu"));
    device_->addItem(tr("CUDA"), QStringLiteral("cuda"));
    if (!glamm::cuda_available()) {
        // Still listed, so that a saved "cuda" setting shows, but not selectable.
        auto* items = qobject_cast<QStandardItemModel*>(device_->model());
        if (items) items->item(1)->setEnabled(false);
        device_->setItemData(1, tr("This build has no CUDA support, or no GPU is visible."),
                             Qt::ToolTipRole);
    }
    dtype_ = new QComboBox;
    dtype_->addItem(tr("float32 (exact)"), QStringLiteral("f32"));
    dtype_->addItem(tr("bfloat16"), QStringLiteral("bf16"));
    dtype_->addItem(tr("float16"), QStringLiteral("f16"));
    quantize_ = new QComboBox;
    quantize_->addItem(tr("as stored (exact)"), QString());
    quantize_->addItem(tr("int8 (CPU: faster decoding, smaller in memory)"), QStringLiteral("int8"));
    quantize_->setItemData(1,
                           tr("The language model's linear weights are rounded to int8 rows "
                              "when loading: answers are close to, not exactly, the model's."),
                           Qt::ToolTipRole);
    maxNewTokens_ = new QSpinBox;
    maxNewTokens_->setRange(1, 4096);
    temperature_ = new QDoubleSpinBox;
    temperature_->setRange(0, 2);
    temperature_->setSingleStep(0.1);
    temperature_->setSpecialValueText(tr("0 (greedy)"));
    topP_ = new QDoubleSpinBox;
    topP_->setRange(0.01, 1);
    topP_->setSingleStep(0.05);
    check_ = new QLabel;
    check_->setWordWrap(true);

    auto* form = new QFormLayout;
    form->addRow(tr("&Model folder:"), withBrowse(modelDir_, browseModelButton));
    form->addRow(QString(), check_);
    form->addRow(tr("&CLIP folder:"), withBrowse(visionTowerDir_, browseClipButton));
    form->addRow(tr("&Device:"), device_);
    form->addRow(tr("D&type:"), dtype_);
    form->addRow(tr("&Language model weights:"), quantize_);
    form->addRow(tr("Max &new tokens:"), maxNewTokens_);
    form->addRow(tr("&Temperature:"), temperature_);
    form->addRow(tr("Top-&p:"), topP_);

    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(buttons);
    resize(620, sizeHint().height());
    setSettings(load());
}

void SettingsDialog::setSettings(const ModelSettings& s) {
    modelDir_->setText(s.modelDir);
    visionTowerDir_->setText(s.visionTowerDir);
    device_->setCurrentIndex(std::max(0, device_->findData(s.device)));
    dtype_->setCurrentIndex(std::max(0, dtype_->findData(s.dtype)));
    quantize_->setCurrentIndex(std::max(0, quantize_->findData(s.quantize)));
    maxNewTokens_->setValue(s.maxNewTokens);
    temperature_->setValue(s.temperature);
    topP_->setValue(s.topP);
    updateCheck();
}

ModelSettings SettingsDialog::settings() const {
    ModelSettings s;
    s.modelDir       = modelDir_->text().trimmed();
    s.visionTowerDir = visionTowerDir_->text().trimmed();
    s.device         = device_->currentData().toString();
    s.dtype          = dtype_->currentData().toString();
    s.quantize       = quantize_->currentData().toString();
    s.maxNewTokens   = maxNewTokens_->value();
    s.temperature    = temperature_->value();
    s.topP           = topP_->value();
    return s;
}

ModelSettings SettingsDialog::load() {
    QSettings q;
    ModelSettings s;
    s.modelDir       = q.value(QStringLiteral("model/dir")).toString();
    s.visionTowerDir = q.value(QStringLiteral("model/visionTower")).toString();
    s.device         = q.value(QStringLiteral("model/device"), s.device).toString();
    s.dtype          = q.value(QStringLiteral("model/dtype"), s.dtype).toString();
    s.quantize       = q.value(QStringLiteral("model/quantize"), s.quantize).toString();
    s.maxNewTokens   = q.value(QStringLiteral("generation/maxNewTokens"), s.maxNewTokens).toInt();
    s.temperature    = q.value(QStringLiteral("generation/temperature"), s.temperature).toDouble();
    s.topP           = q.value(QStringLiteral("generation/topP"), s.topP).toDouble();
    return s;
}

void SettingsDialog::save(const ModelSettings& s) {
    QSettings q;
    q.setValue(QStringLiteral("model/dir"), s.modelDir);
    q.setValue(QStringLiteral("model/visionTower"), s.visionTowerDir);
    q.setValue(QStringLiteral("model/device"), s.device);
    q.setValue(QStringLiteral("model/dtype"), s.dtype);
    q.setValue(QStringLiteral("model/quantize"), s.quantize);
    q.setValue(QStringLiteral("generation/maxNewTokens"), s.maxNewTokens);
    q.setValue(QStringLiteral("generation/temperature"), s.temperature);
    q.setValue(QStringLiteral("generation/topP"), s.topP);
}

QString SettingsDialog::resolvedModelDir(const QString& dir) {
    return dir.isEmpty() ? QString::fromStdString(glamm::default_model_dir()) : dir;
}

QString SettingsDialog::checkModelFolder(const QString& dir) {
    if (dir.isEmpty()) return tr("No model folder is set.");
    const QDir d(dir);
    if (!d.exists()) return tr("The folder %1 does not exist.").arg(dir);
    QStringList missing;
    if (!d.exists(QStringLiteral("config.json"))) missing << QStringLiteral("config.json");
    if (!d.exists(QStringLiteral("tokenizer.model"))) missing << QStringLiteral("tokenizer.model");
    const QStringList weights =
        d.entryList({QStringLiteral("*.safetensors"), QStringLiteral("*.bin")}, QDir::Files);
    if (weights.isEmpty()) missing << tr("weights (*.safetensors or *.bin)");
    if (missing.isEmpty()) return {};
    return tr("%1 is not a GLaMM release: missing %2.")
        .arg(dir, missing.join(QStringLiteral(", ")));
}

void SettingsDialog::browseModel() {
    const QString dir =
        QFileDialog::getExistingDirectory(this, tr("GLaMM Model Folder"), modelDir_->text());
    if (!dir.isEmpty()) modelDir_->setText(dir);
}

void SettingsDialog::browseVisionTower() {
    const QString dir =
        QFileDialog::getExistingDirectory(this, tr("CLIP Folder"), visionTowerDir_->text());
    if (!dir.isEmpty()) visionTowerDir_->setText(dir);
}

void SettingsDialog::updateCheck() {
    const QString dir     = modelDir_->text().trimmed();
    const QString problem = checkModelFolder(resolvedModelDir(dir));
    const QString ok = dir.isEmpty() ? tr("✓ the bundled GLaMM-Shapes model (a small demo model "
                                          "trained on synthetic shapes)")
                                     : tr("✓ looks like a GLaMM release");
    check_->setText(problem.isEmpty() ? ok : problem);
    check_->setStyleSheet(problem.isEmpty() ? QStringLiteral("color: #2a7a2a;")
                                            : QStringLiteral("color: #b00;"));
}
